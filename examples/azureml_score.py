"""A scoring script written for Azure ML's data collector, with one import changed.

The original starts with `from azureml.ai.monitoring import Collector`; this is the
only line that differs. Azure ML calls init() once and run() per request.
"""

import json

import pandas as pd

from otel_collector_ext import Collector  # was: from azureml.ai.monitoring import Collector


def init() -> None:
    global inputs_collector, outputs_collector, inputs_outputs_collector
    inputs_collector = Collector(name="model_inputs")
    outputs_collector = Collector(name="model_outputs")
    # on_error receives programming errors instead of raising, as in Azure's examples
    inputs_outputs_collector = Collector(name="model_inputs_outputs", on_error=lambda e: print(e))


def predict(input_df: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"score": input_df.sum(axis=1, numeric_only=True) / 10.0})


def run(data: str) -> str:
    input_df = pd.DataFrame(json.loads(data)["data"])
    context = inputs_collector.collect(input_df)  # a CorrelationContext
    output_df = predict(input_df)
    outputs_collector.collect(output_df, context)  # same correlation id as the inputs
    return output_df.to_json(orient="records")


if __name__ == "__main__":
    # Locally, what Azure ML's inference server does: init() once, then run() per request
    # (each argument is one request body; without any, two sample rows).
    import sys

    init()
    for body in sys.argv[1:] or ['{"data": [{"age": 31, "income": 5.2}, {"age": 45, "income": 6.1}]}']:
        print(run(body))
