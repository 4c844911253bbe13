"""Process entry points: `conveyor dev | server | worker | scheduler | migrate | user | token |
bench`, and the demo handlers `conveyor dev` runs."""
