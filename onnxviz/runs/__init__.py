"""The run directory (``RunDir``, layout.py): what `onnxviz render`, `mine`, `attribute` and `atlas` write,
and how it is read back.

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
``layout.py`` names every folder; ``command.py`` builds every `onnxviz ...` line shown with a picture;
``render_records.py`` writes and reads render records; ``render_jobs.py`` runs the render API for each
kind of picture and writes it.
"""
from .command import api_default, command
from .layout import RunDir
from .render_records import UNIT_KINDS, Picture, collect_renders, write_render

__all__ = ["api_default", "command", "RunDir", "UNIT_KINDS", "Picture", "collect_renders", "write_render"]
