"""The walkthrough window (a torchvision or tutorial model, stage by stage, on one input), its views,
its worker, and the main window's Models-menu launcher (which imports only this package)."""
