"""Interoperation with the tools researchers already use: scenarios as Gymnasium environments and ids
(``gymnasium_env``, ``registration``), MiniGrid environments as worlds (``minigrid``), and policies trained with
Stable-Baselines3 or torch (``policies``)."""
