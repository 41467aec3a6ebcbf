from aligntriage.cli.main import main

main()
