"""Goal discovery: when no named hypothesis explains the agent, which goal over a basis every grid world has does?

The basis is read off the observations ([H, W, C] planes with an ``agent`` channel): the agent enters cell (r, c),
row r, column c; the agent steps onto a cell that held object channel k; and each candidate goal's own event.
Maximum-entropy inverse RL (maximum causal entropy, Ziebart et al.) fits a reward r(s, a) = theta . phi(s, a) over
that basis, exactly on the enumerated levels: for the finite, undiscounted episode the log-likelihood of the agent's
actions is E_agent[sum_t theta . phi] - V_0(theta), concave in theta, whose gradient is the difference between the
agent's and the soft-optimal policy's expected feature counts, both computed by exact forward propagation. The
feature with the largest weight names the goal ("reach column 0"), which is then scored like every other
hypothesis (its share of the agent's predictable behaviour, at a held-out temperature).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from aligntriage.solve.enumerate import MDPBatch
from aligntriage.solve.flow import propagate
from aligntriage.solve.kernels import soft_flow
from aligntriage.solve.value import Episode, Schedule, continuation

L2 = 1e-3
"""Ridge on the weights: keeps the optimum finite when a feature separates the agent's behaviour perfectly."""


@dataclass(frozen=True)
class Basis:
    """Transition features of a batch: each transition enters one cell (hence one row and one column), touches the
    object channels its new cell held before the step, and may fire candidate goals' events."""

    names: tuple[str, ...]
    cell: np.ndarray  # [S, A] index of the cell entered (-1 where the agent is not seen)
    shape: tuple[int, int]
    touch: np.ndarray  # [K, S, A] bool
    touch_names: tuple[str, ...]
    events: np.ndarray  # [G, S, A] bool
    event_names: tuple[str, ...]

    @property
    def size(self) -> int:
        height, width = self.shape
        return height * width + height + width + len(self.touch_names) + len(self.event_names)

    def reward(self, theta: np.ndarray) -> np.ndarray:
        """[S, A] reward theta . phi(s, a)."""
        height, width = self.shape
        cells = theta[: height * width]
        rows = theta[height * width: height * width + height]
        cols = theta[height * width + height: height * width + height + width]
        rest = theta[height * width + height + width:]
        seen = self.cell >= 0
        cell = np.where(seen, self.cell, 0)
        reward = np.where(seen, cells[cell] + rows[cell // width] + cols[cell % width], 0.0)
        k = len(self.touch_names)
        reward = reward + np.tensordot(rest[:k], self.touch, axes=1) + np.tensordot(rest[k:], self.events, axes=1)
        return reward

    def counts(self, occupancy: np.ndarray) -> np.ndarray:
        """Expected feature counts [F] of a state-action occupancy [S, A]."""
        height, width = self.shape
        seen = self.cell >= 0
        cells = np.bincount(self.cell[seen], occupancy[seen], minlength=height * width)
        rows = cells.reshape(height, width).sum(axis=1)
        cols = cells.reshape(height, width).sum(axis=0)
        touch = (self.touch * occupancy[None]).sum(axis=(1, 2))
        events = (self.events * occupancy[None]).sum(axis=(1, 2))
        return np.concatenate([cells, rows, cols, touch, events])

    def indicator(self, index: int) -> np.ndarray:
        """[S, A] the one feature ``index`` as a reward (the discovered goal)."""
        theta = np.zeros(self.size)
        theta[index] = 1.0
        return self.reward(theta)


def basis(observations: np.ndarray, channels: tuple[str, ...], batch: MDPBatch,
          events: dict[str, np.ndarray]) -> Basis | None:
    """The feature basis of a batch, or None where the observation shows no agent on a grid."""
    if observations.ndim != 4 or "agent" not in channels:
        return None
    num_states = observations.shape[0]
    height, width = observations.shape[1], observations.shape[2]
    agent = channels.index("agent")
    plane = observations[..., agent].reshape(num_states, -1) > 0
    where = np.where(plane.any(axis=1), plane.argmax(axis=1), -1)
    cell = where[batch.next_state]
    objects = [k for k, name in enumerate(channels) if name != "agent"]
    flat = observations.reshape(num_states, height * width, -1)
    safe = np.where(cell >= 0, cell, 0)
    touch = np.stack([(flat[np.arange(num_states)[:, None], safe, k] > 0) & (cell >= 0) for k in objects]) \
        if objects else np.zeros((0,) + cell.shape, bool)
    touch_names = tuple(channels[k] for k in objects)
    names = tuple([f"reach cell ({r}, {c})" for r in range(height) for c in range(width)]
                  + [f"reach row {r}" for r in range(height)] + [f"reach column {c}" for c in range(width)]
                  + [f"touch '{name}'" for name in touch_names] + [f"goal '{name}'" for name in events])
    event_stack = np.stack(list(events.values())) if events else np.zeros((0,) + cell.shape, bool)
    return Basis(names, cell, (height, width), touch, touch_names, event_stack, tuple(events))


@dataclass(frozen=True)
class Discovery:
    """The fitted weights and the goal the largest one names."""

    goal: str
    index: int
    weights: dict[str, float]  # the five largest
    log_likelihood: float  # the fit's objective: the agent's log-likelihood under the fitted reward, minus the ridge
    iterations: int


def discover(b: Basis, batch: MDPBatch, policy: Schedule, mask: np.ndarray, horizon: int) -> Discovery:
    """Maximum-causal-entropy IRL over the basis for one agent (its exact behaviour on ``batch``)."""
    episode = Episode(1.0, horizon)
    allowed = np.asarray(mask, bool)
    agent_counts = b.counts(propagate(batch, policy, episode).occupancy)
    starts = batch.initial[~batch.terminal[batch.initial]]
    flow = soft_flow(batch.next_state, continuation(batch), allowed, starts, horizon)

    def objective(theta):
        value, model = flow(np.where(batch.terminal[:, None], 0.0, b.reward(theta)))
        loss = -(agent_counts @ theta - value[starts].sum()) + L2 * theta @ theta
        grad = -(agent_counts - b.counts(model)) + 2 * L2 * theta
        return loss, grad

    # Small dense algebra: OpenBLAS's threads cost more to wake than the work (30-80 ms a fit on a loaded 2-core
    # machine against 1 ms on one thread).
    with threadpool_limits(limits=1, user_api="blas"):
        fit = minimize(objective, np.zeros(b.size), jac=True, method="L-BFGS-B", options={"maxiter": 40})
    theta = fit.x
    order = np.argsort(-theta)
    top = int(order[0])
    return Discovery(goal=b.names[top], index=top, weights={b.names[i]: float(theta[i]) for i in order[:5]},
                     log_likelihood=float(-fit.fun), iterations=int(fit.nit))
