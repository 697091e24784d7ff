"""The pipeline: discover → fetch (batched) → edit → write, for `run` and the tasks."""
