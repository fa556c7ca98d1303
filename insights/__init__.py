"""Pure computations over what the store holds, beside scoring: renewal outcomes, replays of the past, backtests and the data-fitted model."""
