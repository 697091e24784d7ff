"""The fake YouTube for demo, tests and bench; nothing in the pipeline imports it."""
