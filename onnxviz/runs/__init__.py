"""The run directory: what `onnxviz render` and `onnxviz mine` write, and how it is read back.

    <run>/render/<layer slug>/<stem>.png   a rendered image
    <run>/render/<layer slug>/<stem>.json  its record: model, layer, unit, kind, objective, label,
                                           settings (steps, size, seed, lr, batch, device, param,
                                           transforms, ...), activation_start / _end / _per_step,
                                           dead, warnings, batch_index, reliability {verdict,
                                           score, meaning, ...} (verdict "unknown" when not
                                           checked), and the command
    <run>/mining/mining.sqlite             dataset examples (onnxviz.mining: store.py, results.py)

Stems: ``<kind>_<unit>`` (channel_12, neuron_3, class_logit_207, class_prob_1), MACO's
``<kind>_<unit>_maco`` (record ``param`` "maco", ``importance``: its ``<stem>_importance.png``),
``diversity_<kind>_<unit>_<i>``, ``deepdream_<photo>``, ``caricature_<photo>``,
``accentuate_<unit>_<photo>`` (kind "accentuation", ``photo``, ``accentuation`` {...}).
``command.py`` builds every `onnxviz ...` line shown with a picture; ``renders.py`` writes and
reads render records; ``render.py`` runs the render API for each kind of picture and writes it.
"""
from .command import command
from .render_records import RENDER_DIR, UNIT_KINDS, Picture, collect_renders, write_render

__all__ = ["command", "RENDER_DIR", "UNIT_KINDS", "Picture", "collect_renders", "write_render"]
