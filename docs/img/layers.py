#!/usr/bin/python3
"""Draws docs/img/layers.svg and layers.png: the floors of FMI and what may include
what (the rules of scripts/check-layering.py; docs/architecture.md explains them).

    /usr/bin/python3 docs/img/layers.py        (matplotlib; Debian's python3-matplotlib)

A box may include the boxes below it that an arrow reaches, and the public API
(include/fmi/) on the right; nothing includes upwards.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

# name, subtitle, x, y, width, height, colour (x, y: lower left, in grid units)
BOXES = {
    "tools": ("tools/<tool>/", "fmirun  fmi-model  fmi-calibrate  fmi-bench", 0.0, 6.1, 6.6, 0.9, "#f3e5c0"),
    "toolscommon": ("tools/common/", "parse_size, split, Fd (no FMI needed)", 0.0, 4.9, 3.2, 0.9, "#f3e5c0"),
    "server": ("server/", "fmi-rendezvous", 6.8, 6.1, 2.2, 0.9, "#f3e5c0"),
    "communicator": ("src/communicator/", "the Communicator", 3.4, 4.9, 3.2, 0.9, "#cfe3f5"),
    "policy": ("src/policy/", "default policy, explain", 3.4, 3.7, 3.2, 0.9, "#cfe3f5"),
    "collectives": ("src/collectives/", "free functions over\nthe channel interfaces", 0.0, 2.3, 3.2, 1.0,
                    "#d5ecd4"),
    "channels": ("src/channels/", "registry.h, common/,\ninproc/ direct/ redis/ s3/", 3.4, 2.3, 3.2, 1.0,
                 "#d5ecd4"),
    "wire": ("src/wire/", "protocol, sockets,\nauthentication", 6.8, 2.3, 2.2, 1.0, "#d5ecd4"),
    "base": ("src/base/", "errors, config reader, types", 0.0, 1.1, 9.0, 0.8, "#e6dcf0"),
    "public": ("include/fmi/", "public API", 9.4, 1.1, 1.2, 5.9, "#eeeeee"),
}

# (from, to): the includes the rules allow between floors (not repeated for base and
# the public API, which every floor may use).
ARROWS = [
    ("tools", "toolscommon"),
    ("communicator", "policy"),
    ("policy", "collectives"),
    ("policy", "channels"),
    ("channels", "wire"),
    ("server", "wire"),
]


def centre(b, side):
    _, _, x, y, w, h, _ = BOXES[b]
    return {"top": (x + w / 2, y + h), "bottom": (x + w / 2, y), "left": (x, y + h / 2),
            "right": (x + w, y + h / 2)}[side]


def main():
    fig, ax = plt.subplots(figsize=(10.5, 6.6))
    for key, (title, sub, x, y, w, h, colour) in BOXES.items():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                    fc=colour, ec="#444444", lw=1.2))
        if key == "public":
            ax.text(x + w / 2, y + h / 2 + 0.2, title, ha="center", va="center", fontsize=11,
                    weight="bold", rotation=90)
            ax.text(x + w / 2 - 0.35, y + h / 2 + 0.2, "used by every floor", ha="center", va="center",
                    fontsize=8.5, rotation=90)
            continue
        ax.text(x + w / 2, y + h - 0.25, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + w / 2, y + (h - 0.4) / 2, sub, ha="center", va="center", fontsize=8.5)

    def arrow(a, b, sa, sb, style="-|>", colour="#333333"):
        ax.add_patch(FancyArrowPatch(centre(a, sa), centre(b, sb), arrowstyle=style, mutation_scale=14,
                                     lw=1.3, color=colour, shrinkA=2, shrinkB=2))

    arrow("tools", "toolscommon", "bottom", "top")
    arrow("communicator", "policy", "bottom", "top")
    arrow("policy", "channels", "bottom", "top")
    arrow("policy", "collectives", "left", "top")
    arrow("channels", "wire", "right", "left")
    arrow("server", "wire", "bottom", "top")
    # The Communicator uses everything below; the tools and server only the public
    # API (tools) or wire and base (server).
    ax.text(6.7, 5.3, "uses every\nfloor below", fontsize=8.5, va="center", color="#335")
    ax.text(0.0, 0.55, "An arrow: may include. Every floor may include src/base/ and the public API; nothing "
            "includes upwards;\na channel includes its own folder, channels/common/ and channels/registry.h "
            "(Direct also src/wire/), never another channel,\nthe collectives, the policy or the Communicator. "
            "Checked by scripts/check-layering.py (ctest layering.check).",
            fontsize=8.5, va="center", color="#222")
    ax.set_xlim(-0.2, 10.8)
    ax.set_ylim(0.0, 7.1)
    ax.set_aspect("equal")
    ax.axis("off")
    here = os.path.dirname(os.path.abspath(__file__))
    for ext in ("svg", "png"):
        fig.savefig(os.path.join(here, "layers." + ext), bbox_inches="tight", dpi=110)
    print("wrote", os.path.join(here, "layers.svg"), "and layers.png")


if __name__ == "__main__":
    main()
