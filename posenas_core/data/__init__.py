"""Data: SynthPose generator, COCO / PoseTrack readers, top-down transforms, heatmap codec."""
