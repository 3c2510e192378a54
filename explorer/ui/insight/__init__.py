"""The Insight window (top patches, feature visualisation, attribution, deconvnet) and its worker."""
