"""Every built-in scenario as a gymnasium id, ``aligntriage/<scenario>-v0``.

``import aligntriage`` registers them, so ``gymnasium.make("aligntriage/coinrun-v0", dist="deploy")`` and
``gymnasium.make_vec("aligntriage/coinrun-v0", num_envs=64, dist="deploy")`` work after it; with gymnasium
alone, the module prefix makes gymnasium import aligntriage first:
``gymnasium.make("aligntriage:aligntriage/coinrun-v0", dist="deploy")``. (Gymnasium 1.0 removed the
``gymnasium.envs`` entry-point plugins of 0.26-0.29; importing a module, by hand or through the prefix, is how
1.x finds environments of other packages.)

JAX scenarios make a ``ScenarioEnv`` (``make``) or a ``ScenarioVectorEnv`` (``make_vec``: one jitted call steps
every env). A MiniGrid scenario makes its MiniGrid environment of the distribution through the scenario's
declared wrappers: the environment to train an agent on that ``diagnose`` then observes the same way
(``make_vec`` steps copies of it in a ``SyncVectorEnv``). Keyword arguments of ``make`` go to the constructor:
``dist``, ``params`` (level parameters), and for JAX scenarios ``utility_info``, ``render_mode``, ``obs_bounds``.
"""

from __future__ import annotations

import gymnasium

NAMESPACE = "aligntriage"


def env_id(name: str) -> str:
    return f"{NAMESPACE}/{name}-v0"


def register_all() -> list[str]:
    """Register ``aligntriage/<name>-v0`` for every built-in scenario (idempotent); returns the ids."""
    from aligntriage.worlds import EXTERNAL, scenario_names

    ids = []
    for name in scenario_names():
        if env_id(name) not in gymnasium.registry:
            if EXTERNAL.get(name) == "minigrid":
                gymnasium.register(id=env_id(name), entry_point="aligntriage.interop.minigrid:make_env",
                                   kwargs={"scenario_or_name": name})
            else:
                gymnasium.register(
                    id=env_id(name),
                    entry_point="aligntriage.interop.gymnasium_env:ScenarioEnv",
                    vector_entry_point="aligntriage.interop.gymnasium_env:ScenarioVectorEnv",
                    kwargs={"scenario_or_name": name},
                )
        ids.append(env_id(name))
    return ids
