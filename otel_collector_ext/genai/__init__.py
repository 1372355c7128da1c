"""GenAI endpoints: OpenAI-compatible calls as typed `gen_ai` rows.

`record` defines the row (its columns follow the OpenTelemetry GenAI semantic
conventions), `openai_api` and `messages` read OpenAI-compatible bodies, `sse` parses
streams incrementally, `capture` watches one HTTP call for the payload middleware,
and `events` maps upstream `gen_ai.client.inference.operation.details` log records.
See docs/genai.md.
"""

from .record import COLUMNS, GEN_AI_COLLECTION, GenAIRecordError, gen_ai_row

__all__ = ["COLUMNS", "GEN_AI_COLLECTION", "GenAIRecordError", "gen_ai_row"]
