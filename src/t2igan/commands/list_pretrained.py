"""``t2igan list-pretrained``: the models bundled with the package (usable offline by name), with
their model, size, training steps and Shapes-probe scores (see :mod:`t2igan.runs`)."""

from __future__ import annotations

HELP = "models bundled with the package (usable offline by name)"


def add_arguments(parser) -> None:
    pass


def run(args) -> None:
    from ..runs import bundled_card, bundled_names

    for name in bundled_names():
        card = bundled_card(name)
        scores = card.get("probe", {}).get("per_attribute", {})
        score_text = " ".join(f"{k} {100 * v:.0f}%" for k, v in scores.items())
        if "r_precision" in card:  # a bundled DAMSM: the encoders the -shapes presets start from
            score_text = f"real-image R-precision {100 * card['r_precision']['mean']:.1f}% (text encoder for the GANs)"
        print(f"{name:<18} {card.get('model', '?'):<12} {card.get('image_size', '?')} px  "
              f"{card.get('steps', '?')} steps  {score_text}")
