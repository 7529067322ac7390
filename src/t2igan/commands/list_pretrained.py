"""``t2igan list-pretrained``: the models bundled with the package (usable offline by name), with
their model, size, training steps and scores (see :mod:`t2igan.runs`), in aligned columns."""

from __future__ import annotations

HELP = "models bundled with the package (usable offline by name)"


def add_arguments(parser) -> None:
    pass


def card_scores(card: dict) -> str:
    """A bundled model's scores in one line: the Shapes probe's per attribute, or a DAMSM's R-precision."""
    if "r_precision" in card:  # a bundled DAMSM: the encoders the -shapes presets start from
        return f"real-image R-precision {100 * card['r_precision']['mean']:.1f}% (the -shapes GANs' text encoder)"
    scores = card.get("probe", {}).get("per_attribute", {})
    return "probe: " + " ".join(f"{k} {100 * v:.0f}%" for k, v in scores.items()) if scores else ""


def run(args) -> None:
    from ..runs import bundled_card, bundled_names

    rows = [("name", "model", "size", "steps", "scores")]
    for name in bundled_names():
        card = bundled_card(name)
        steps = card.get("steps")
        rows.append((name, str(card.get("model", "?")), f"{card.get('image_size', '?')} px",
                     f"{steps:,}" if isinstance(steps, int) else "?", card_scores(card)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].rjust(widths[2]), row[3].rjust(widths[3])]
        print("  ".join(cells + [row[4]]).rstrip())
