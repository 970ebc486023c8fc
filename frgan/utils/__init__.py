"""Experiment scaffolding shared by the entry points."""
