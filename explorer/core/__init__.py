"""The headless core: layers, stacks, the engine, inputs, rendering. No Qt here."""
