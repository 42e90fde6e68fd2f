"""GUI-free D2SD engine: target model, drafters, tree verification and the generation loop."""
