"""Random-policy environment steps per second for every built-in scenario, against navix in the same run.

Each scenario runs ``--envs`` parallel episodes for ``--steps`` steps as one ``lax.scan`` inside one ``jit``:
per step a batch of uniform random actions (``jax.random.randint``), one auto-resetting step of every env (ended
episodes restart on a uniformly random level of a pool drawn with ``sample_levels``) and ``world.observe`` of every
next state. The step is ``vmap(worlds.vector.auto_reset_step)`` with one split key per env (the way the PPO trainer
calls it) and, as a second row, ``worlds.vector.auto_reset_batch`` (one key per step for the whole batch).
Every observation is folded into the scan's carry (per-cell sums over the batch, read as float32 the way a policy
network reads them; ``--consume`` picks another fold) and returned with a reward checksum, so XLA cannot drop any
of the work. The peer is navix ``Navix-Empty-8x8-v0`` through its own API
(vmapped ``env.reset``/``env.step``, navix's autoreset as-is, every ``timestep.observation`` consumed the same way);
xminigrid's ``MiniGrid-Empty-8x8`` and gymnax's visual ``FourRooms-misc`` join it, the same way, where installed.

Compile time is excluded (one warm-up call each). Then ``--repeats`` rounds, each timing every function once in
turn, so load from other processes falls on all of them alike: steps/s is envs * steps / median time, and the
ratio against navix is the median over rounds of (navix time / scenario time) in the same round.

    python benchmarks/world_speed.py --envs 4096 --steps 128 --repeats 5 [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import traceback

import jax
import jax.numpy as jnp

from aligntriage.worlds import get_scenario, jax_scenarios
from aligntriage.worlds.vector import auto_reset_batch, auto_reset_step, reset_from_pool, sample_levels

NAVIX_ENV = "Navix-Empty-8x8-v0"
XMINIGRID_ENV = "MiniGrid-Empty-8x8"
GYMNAX_ENV = "FourRooms-misc"


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal"):
                    mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
    }


def time_interleaved(calls: dict, repeats: int) -> dict:
    """Per name: (median seconds, timings, first-call seconds) of ``fn(*args)``, blocking on the result.

    Every function is compiled and run once first; then each round times every function once, so that load
    from other processes on the machine falls on all of them alike.
    """
    warmup = {}
    for name, (fn, args) in calls.items():
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        warmup[name] = time.perf_counter() - start
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, (fn, args) in calls.items():
            start = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(times[name]) if times[name] else None, times[name], warmup[name])
            for name in calls}


def consume_f32(obs_sum: jax.Array, obs: jax.Array) -> jax.Array:
    """Fold a batch of observations into the carried checksum: per-cell sums over envs, taken in float32.

    What a policy network does first with a batch of observations is to read every element as a float32; this
    does that and sums over the batch (exact: at most 4,096 * 255 per cell and step), then adds the per-cell sums
    into the int32 carry. The same for every world and for navix; every element of every observation counts.
    """
    return obs_sum + obs.astype(jnp.float32).sum(axis=0).astype(jnp.int32)


def consume_int32(obs_sum: jax.Array, obs: jax.Array) -> jax.Array:
    """Per-cell int32 sums over envs. XLA on CPU splits this reduction into a tree of reduce-windows over an int32
    copy of the batch, which costs coinrun (420 elements an observation) far more than navix (192)."""
    return obs_sum + obs.sum(axis=0, dtype=jnp.int32)


def consume_xor(obs_sum: jax.Array, obs: jax.Array) -> jax.Array:
    """Per-cell XOR over envs in the observation's own dtype (a parity checksum), added into the int32 carry.

    The cheapest way found to use every element, so it shows most of the worlds' own cost.
    """
    folded = jax.lax.reduce(obs, jnp.zeros((), obs.dtype), jax.lax.bitwise_xor, (0,))
    return obs_sum + folded.astype(jnp.int32)


CONSUMERS = {"f32": consume_f32, "int32": consume_int32, "xor": consume_xor}


def random_rollout(reset, step, num_actions: int, envs: int, steps: int, consume=consume_f32):
    """Jitted ``run(key, *data) -> (observation checksum, reward checksum)``: ``envs`` episodes of uniform random
    actions for ``steps`` steps as one scan, the same loop for every world. Each world comes in through its own API:
    ``reset(keys, *data) -> (state, obs)`` and ``step(state, actions, key, *data) -> (state, obs, checksum)``."""

    def run(key, *data):
        k_init, k_scan = jax.random.split(key)
        state, obs = reset(jax.random.split(k_init, envs), *data)

        def body(carry, k):
            state, obs_sum, reward_sum = carry
            k_act, k_step = jax.random.split(k)
            actions = jax.random.randint(k_act, (envs,), 0, num_actions, dtype=jnp.int32)
            state, obs, checksum = step(state, actions, k_step, *data)
            return (state, consume(obs_sum, obs), reward_sum + checksum), None

        carry = (state, jnp.zeros(obs.shape[1:], jnp.int32), jnp.float32(0))
        (_, obs_sum, reward_sum), _ = jax.lax.scan(body, carry, jax.random.split(k_scan, steps))
        return obs_sum, reward_sum  # only the checksums: returning the final states costs copies

    return jax.jit(run)


def scenario_runner(scenario, envs: int, steps: int, pool: int, batched: bool = False, consume=consume_f32):
    """(jitted run(key, levels), level pool, observation shape); ended episodes restart on a level of the pool."""
    world = scenario.world
    reward_fn = scenario.reward
    step_batch = jax.vmap(lambda levels, key, state, action: auto_reset_step(world, reward_fn, levels, key, state,
                                                                             action), in_axes=(None, 0, 0, 0))
    observe = jax.vmap(world.observe)

    def reset(keys, levels):
        states = jax.vmap(lambda k: reset_from_pool(world, levels, k))(keys)
        return states, observe(states)

    def step(states, actions, key, levels):
        if batched:  # one key for the batch
            states, tr = auto_reset_batch(world, reward_fn, levels, key, states, actions)
        else:  # one key per env, as a vmapped auto_reset_step takes them
            states, tr = step_batch(levels, jax.random.split(key, envs), states, actions)
        return states, observe(states), tr.reward.sum() + tr.terminated.sum() + tr.truncated.sum()

    levels = jax.jit(lambda k: sample_levels(scenario, "train", k, pool))(jax.random.PRNGKey(1))
    first = jax.tree.map(lambda leaf: leaf[0], levels)
    obs_shape = jax.eval_shape(lambda lv: world.observe(world.reset(jax.random.PRNGKey(0), lv)), first).shape
    return random_rollout(reset, step, world.num_actions, envs, steps, consume), levels, tuple(obs_shape)


def navix_runner(envs: int, steps: int, consume=consume_f32):
    """navix's Empty-8x8 through its own API, its autoreset as it is."""
    import navix as nx

    env = nx.make(NAVIX_ENV)
    num_actions = int(env.action_space.n) if hasattr(env.action_space, "n") else len(env.action_set)

    def reset(keys):
        timestep = jax.vmap(env.reset)(keys)
        return timestep, timestep.observation

    def step(timestep, actions, key):
        timestep = jax.vmap(env.step)(timestep, actions)
        return timestep, timestep.observation, timestep.reward.sum() + timestep.step_type.sum()

    return random_rollout(reset, step, num_actions, envs, steps, consume), tuple(env.observation_space.shape)


def xminigrid_runner(envs: int, steps: int, consume=consume_f32):
    """xminigrid's MiniGrid-Empty-8x8 through its own API, with its GymAutoResetWrapper (its env does not reset
    itself); the observation is the agent's egocentric view."""
    import xminigrid
    from xminigrid.wrappers import GymAutoResetWrapper

    env, params = xminigrid.make(XMINIGRID_ENV)
    env = GymAutoResetWrapper(env)

    def reset(keys):
        timestep = jax.vmap(env.reset, in_axes=(None, 0))(params, keys)
        return timestep, timestep.observation

    def step(timestep, actions, key):
        timestep = jax.vmap(env.step, in_axes=(None, 0, 0))(params, timestep, actions)
        return timestep, timestep.observation, timestep.reward.sum() + timestep.step_type.sum()

    obs_shape = tuple(jax.eval_shape(lambda k: env.reset(params, k), jax.random.PRNGKey(0)).observation.shape)
    return random_rollout(reset, step, env.num_actions(params), envs, steps, consume), obs_shape


def gymnax_runner(envs: int, steps: int, consume=consume_f32):
    """gymnax's FourRooms with visual observations through its own API (``env.step`` resets itself)."""
    import gymnax

    env, params = gymnax.make(GYMNAX_ENV, use_visual_obs=True)

    def reset(keys):
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
        return state, obs

    def step(state, actions, key):
        out = jax.vmap(env.step, in_axes=(0, 0, 0, None))(jax.random.split(key, envs), state, actions, params)
        obs, state, reward, flags = out[0], out[1], out[2], out[3:-1]  # done, or terminated and truncated
        return state, obs, reward.sum() + sum(flag.sum() for flag in flags)

    obs_shape = tuple(jax.eval_shape(lambda k: env.reset(k, params)[0], jax.random.PRNGKey(0)).shape)
    return random_rollout(reset, step, env.num_actions, envs, steps, consume), obs_shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pool", type=int, default=1024, help="levels in the auto-reset pool")
    parser.add_argument("--scenarios", nargs="*", default=None, help="default: every built-in scenario")
    parser.add_argument("--no-navix", action="store_true")
    parser.add_argument("--no-peers", action="store_true", help="skip the xminigrid and gymnax peers")
    parser.add_argument("--reset", choices=("step", "batch", "both"), default="both",
                        help="auto-reset path: vmapped auto_reset_step with per-env keys, auto_reset_batch, or both")
    parser.add_argument("--consume", choices=tuple(CONSUMERS), default="f32",
                        help="how observations are folded into the checksum: float32 sums over the batch (default), "
                             "int32 sums, or XOR parity")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    consume = CONSUMERS[args.consume]

    info = machine()
    print(f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, {info['os']}")
    print(f"jax {info['jax']} backend={info['backend']} devices={info['devices']}")
    print(f"envs={args.envs} steps={args.steps} repeats={args.repeats} pool={args.pool} consume={args.consume}\n")

    key = jax.random.PRNGKey(0)
    calls, meta, results, skipped = {}, {}, [], []
    if not args.no_navix:
        try:
            run, obs_shape = navix_runner(args.envs, args.steps, consume)
            name = f"navix {NAVIX_ENV}"
            calls[name] = (run, (key,))
            meta[name] = {"grid": "8x8", "obs_shape": obs_shape, "peer": True}
        except Exception as exc:  # report, keep measuring the scenarios
            print(f"navix: FAILED ({type(exc).__name__}: {exc})")
    if not args.no_peers:  # optional peers (pip install xminigrid gymnax six): skipped, and said, when missing
        for label, runner in ((f"xminigrid {XMINIGRID_ENV}", xminigrid_runner),
                              (f"gymnax {GYMNAX_ENV} (visual)", gymnax_runner)):
            try:
                run, obs_shape = runner(args.envs, args.steps, consume)
                calls[label] = (run, (key,))
                meta[label] = {"grid": "x".join(map(str, obs_shape[:2])), "obs_shape": obs_shape, "peer": True}
            except Exception as exc:
                print(f"{label}: skipped ({type(exc).__name__}: {exc})")
                skipped.append({"name": label, "skipped": f"{type(exc).__name__}: {exc}"})
    names = args.scenarios if args.scenarios else jax_scenarios()
    paths = {"step": [False], "batch": [True], "both": [False, True]}[args.reset]
    for name in names:
        for batched in paths:
            label = f"{name} [auto_reset_batch]" if batched else name
            try:
                scenario = get_scenario(name)
                run, levels, obs_shape = scenario_runner(scenario, args.envs, args.steps, args.pool, batched, consume)
            except Exception as exc:
                print(f"{label}: skipped, failed to import/build ({type(exc).__name__}: {exc})")
                skipped.append({"name": label, "skipped": f"{type(exc).__name__}: {exc}"})
                break
            grid = f"{obs_shape[0]}x{obs_shape[1]}" if len(obs_shape) >= 2 else str(obs_shape)
            calls[label] = (run, (key, levels))
            meta[label] = {"grid": grid, "obs_shape": obs_shape, "reset": "auto_reset_batch" if batched else
                           "vmap(auto_reset_step)"}

    timed = {}
    for name, call in calls.items():  # compile one at a time, so one failure does not lose the others
        try:
            timed[name] = time_interleaved({name: call}, 0)[name][2]
        except Exception as exc:
            traceback.print_exc()
            print(f"{name}: skipped, failed to run ({type(exc).__name__}: {exc})")
            skipped.append({"name": name, "skipped": f"{type(exc).__name__}: {exc}"})
    calls = {name: call for name, call in calls.items() if name in timed}
    measured = time_interleaved(calls, args.repeats)
    navix_name = f"navix {NAVIX_ENV}"
    navix_rate = None
    if navix_name in measured:
        navix_rate = args.envs * args.steps / measured[navix_name][0]
    for name, (median, times, _) in measured.items():
        rate = args.envs * args.steps / median
        ratio = None
        if navix_rate:  # per round, against navix timed in the same round: robust to load that comes and goes
            ratio = statistics.median(nav / own for nav, own in zip(measured[navix_name][1], times))
        results.append({
            "name": name, **meta[name], "steps_per_s": rate, "median_s": median, "times_s": times,
            "compile_s": timed[name], "ratio_vs_navix": ratio})
        spread = ", ".join(f"{t:.3f}" for t in times)
        print(f"{name}: {rate / 1e6:.2f}M steps/s (median {median:.3f}s of [{spread}], first call {timed[name]:.1f}s)")

    results += skipped
    print()
    print("steps/s: envs * steps / median time; vs navix: median over rounds of navix time / scenario time")
    print("| scenario | grid (obs shape) | steps/s | vs navix |")
    print("|---|---|---:|---:|")
    for row in results:
        if "skipped" in row:
            print(f"| {row['name']} | skipped: {row['skipped']} | | |")
            continue
        ratio = row["ratio_vs_navix"] if row["ratio_vs_navix"] is not None else float("nan")
        shape = "x".join(str(d) for d in row["obs_shape"])
        print(f"| {row['name']} | {row['grid']} ({shape}) | {row['steps_per_s'] / 1e6:.2f}M | {ratio:.2f}x |")

    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "args": vars(args), "results": results}, fh, indent=2)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
