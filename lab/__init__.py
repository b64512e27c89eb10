"""PoseNAS Lab widgets and figures (imports posenas_core's public API; never the other way round).

Widgets (view + wiring; each has `.widget` and displays as a bare expression):
    PoseViewer(person_set, predictions=None, *, heatmap_fn=None, title="")   browse GT / predictions / heatmaps
    TrainingMonitor(run_dir, *, poll_seconds=2.0, autostart=True)          live curves of a training run
    RunTable(reports_root="reports")                                        every notebook run under reports/
Figures (pure functions -> plotly go.Figure): training_curves, pose_figure, ap_bar, metrics_table,
metrics_frame. Drawing with OpenCV: render_pose (-> RGB array), png_bytes.
Helpers: ErrorArea (callback errors in an Output), BackgroundTask (thread + progress bar + stop).

plotly figures are shown with plotly's Jupyter default (its mime type, drawn once by JupyterLab); the HTML
export of an executed notebook draws them offline (`posenas_core.runs.notebooks.export_html`).
"""

from lab._util import BackgroundTask, ErrorArea, Poller, png_bytes
from lab.draw import render_pose
from lab.figures import ap_bar, metrics_frame, metrics_table, pose_figure, training_curves
from lab.pose_viewer import PoseViewer, match_predictions
from lab.run_table import RunTable
from lab.training_monitor import TrainingMonitor

__all__ = [
    "PoseViewer",
    "TrainingMonitor",
    "RunTable",
    "training_curves",
    "pose_figure",
    "ap_bar",
    "metrics_table",
    "metrics_frame",
    "render_pose",
    "png_bytes",
    "match_predictions",
    "ErrorArea",
    "BackgroundTask",
    "Poller",
]

# EvoPose2D (issue 4): GenotypeEditor(spec=None, *, input_hw=None), EvolutionMonitor(run_dir, *, poll_seconds=2.0,
# autostart=True), FrontExplorer(run_dirs, editor=None, *, names=None, x="macs", y="auto"); figures in lab.evo_figures.
from lab.evo_figures import evolution_figure, front_figure, network_diagram, network_frame
from lab.evolution_monitor import EvolutionMonitor
from lab.front_explorer import FrontExplorer
from lab.genotype_editor import GenotypeEditor

__all__ += ["GenotypeEditor", "EvolutionMonitor", "FrontExplorer", "evolution_figure", "front_figure",
            "network_diagram", "network_frame"]
