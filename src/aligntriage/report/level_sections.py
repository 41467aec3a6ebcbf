"""The report's pictures of behaviour on single diagnosed levels: exact state-visitation heatmaps of the agent and
of each candidate goal's optimal policy, the agent's policy as a vector field, and rendered sampled episodes."""

from __future__ import annotations

import numpy as np

from aligntriage.diagnose.engine import Diagnosis
from aligntriage.report import figures
from aligntriage.report.levels import Pick, Views, cell_grid, episodes, policy_field, visitation
from aligntriage.report.page import esc, figure, img
from aligntriage.report.picture import channel_colours, obs_image
from aligntriage.scenario import Scenario

EPISODES_PER_LEVEL = (2, 1, 1)  # the level where the goals diverge, then the others
MAX_ACTIONS = 40


def legend(channels: tuple[str, ...], obs: np.ndarray) -> list[tuple[str, tuple]]:
    """Colour keys of the channels that show up anywhere on the levels (the agent's own last)."""
    colours = channel_colours(channels)
    present = np.asarray(obs).reshape(-1, len(channels)).any(axis=0)
    keys = [(c, colours[c]) for c, shown in zip(channels, present) if shown and c != "agent"]
    return keys + [("agent", colours["agent"])] if "agent" in colours else keys


def describe(pick: Pick) -> str:
    tail = (", where the candidate goals' optimal behaviours diverge" if pick.disambiguating else
            ", where the candidate goals' optimal behaviours coincide")
    return f"level {pick.index} of the diagnosis's '{pick.dist}' sample{tail}"


def where_it_goes(scenario: Scenario, d: Diagnosis, views: Views) -> str:
    """Heatmaps and vector fields on the first picked level (the diagnosed distribution's, diverging if any)."""
    channels, actions, intended = scenario.world.channels, scenario.world.actions, d.intended
    start = views.start(0)
    backdrop = obs_image(views.obs[start], channels, skip=("agent",))
    width = views.shape[1]
    cell = views.cell[start]
    origin = (int(cell % width), int(cell // width)) if cell >= 0 else None
    keys = [k for k in legend(channels, views.obs[views.states(0)]) if k[0] != "agent"]

    def goal_title(name):
        return f"optimal for goal '{name}'" + (" (intended)" if name == intended else "")

    heat = [(views.label, cell_grid(views, 0, visitation(views, views.agent)))]
    heat += [(goal_title(g), cell_grid(views, 0, visitation(views, p, views.ends[g]))) for g, p in views.goals.items()]
    fields = [(views.label, policy_field(views, 0, views.agent.first, actions, channels))]
    fields += [(goal_title(g), policy_field(views, 0, p.first, actions, channels)) for g, p in views.goals.items()]
    which = esc(describe(views.picks[0]))
    return (figure(figures.heatmaps(backdrop, heat, origin, keys), "state-visitation heatmaps",
                   f"Expected visits per episode to each cell of {which}: exact, from the state distribution pushed "
                   f"through the enumerated level over the {views.episode.horizon}-step episode (the cell where it "
                   f"ends counts once), for {esc(views.label)} and for each candidate goal's optimal policy pursued "
                   "until its goal is reached. S marks the start. If the agent's map looks like one goal's map, that "
                   "goal is what it pursues here.")
            + figure(figures.vector_fields(backdrop, fields, origin, keys), "policy vector fields",
                     "The policy as a vector field on the same level: at every cell the agent can occupy while the "
                     "rest of the level is as at the start, the arrow is the expected move (probability-weighted sum "
                     "of the move directions: a full-length arrow is a certain move, a short one an undecided "
                     f"agent), for {esc(views.label)} and each candidate goal's optimal policy at the first step. "
                     "Red dots, if any, show the probability of actions that are not moves."))


def rendered_episodes(scenario: Scenario, views: Views, seed: int = 0) -> str:
    channels = scenario.world.channels
    width = views.shape[1]
    walked = episodes(scenario, views, max(EPISODES_PER_LEVEL), seed)
    wanted = {p: EPISODES_PER_LEVEL[min(k, len(EPISODES_PER_LEVEL) - 1)] for k, p in enumerate(views.picks)}
    blocks, seen = [], set()
    for e in walked:
        key = (e.pick, tuple(e.states))
        if wanted[e.pick] == 0 or key in seen:
            continue
        wanted[e.pick] -= 1
        seen.add(key)
        frames = [obs_image(views.obs[s], channels) for s in e.states]
        path = [(int(c % width), int(c // width)) for c in views.cell[e.states] if c >= 0]
        actions = " ".join(e.actions[:MAX_ACTIONS]) + (" …" if len(e.actions) > MAX_ACTIONS else "")
        what = f"an episode on '{e.pick.dist}' level {e.pick.index}"
        blocks.append('<figure><div class="pair">'
                      + img(figures.episode_gif(frames), f"animation of {what}", "image/gif", "gif")
                      + img(figures.episode_strip(frames, path), f"frames of {what}")
                      + f"</div><figcaption>{esc(describe(e.pick)).capitalize()}: {len(e.actions)} steps, outcome "
                      f"<b>{esc(e.outcome)}</b>. Actions: {esc(actions)}</figcaption></figure>")
    keys = ", ".join(f'<span style="color:rgb({",".join(str(int(255 * x)) for x in colour)})">■</span> {esc(name)}'
                     for name, colour in legend(channels, views.obs))
    intro = (f"<p>Episodes of {esc(views.label)} sampled on the enumerated levels (pictures only: every figure of "
             "the evidence is exact). The animation plays the episode; the strip shows the route (red) and evenly "
             "spaced frames. The outcome is the first candidate goal achieved, else 'terminated early' (ended "
             f"without any goal, e.g. died) or 'timed out'. Legend: {keys}.</p>")
    return intro + '<div class="episodes">' + "".join(blocks) + "</div>"
