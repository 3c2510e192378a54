"""Insight: what a channel responds to (top patches, feature visualisation) and which pixels made a
decision (attribution, deconvnet). Pure torch; the window only shows what these modules compute."""
