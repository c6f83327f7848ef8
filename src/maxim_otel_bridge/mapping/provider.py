"""Provider names from any convention, normalized into Maxim's strict provider enum."""

from __future__ import annotations

from maxim_otel_bridge.schema import PROVIDERS

__all__ = ["PROVIDER_ALIASES", "ProviderChoice", "normalize_provider"]

PROVIDER_ALIASES: dict[str, str] = {
    # OpenTelemetry GenAI `gen_ai.provider.name` / deprecated `gen_ai.system` well-known values.
    "openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "bedrock",
    "azure.ai.inference": "azure",
    "azure.ai.openai": "azure",
    "az.ai.inference": "azure",
    "az.ai.openai": "azure",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "vertex_ai": "google",
    "gemini": "google",
    "groq": "groq",
    # Spellings used by OpenInference (`llm.provider`, `llm.system`), Traceloop and the Vercel AI SDK
    # (`ai.model.provider` is e.g. `openai.chat`, `anthropic.messages`, `google.generative-ai`).
    "bedrock": "bedrock",
    "amazon-bedrock": "bedrock",
    "amazon_bedrock": "bedrock",
    "azure": "azure",
    "azure_openai": "azure",
    "azure-openai": "azure",
    "google": "google",
    "google_genai": "google",
    "google-genai": "google",
    "vertex": "google",
    "vertexai": "google",
    "google.vertex": "google",
    "google.generative-ai": "google",
    "together": "together",
    "togetherai": "together",
    "together_ai": "together",
    "huggingface": "huggingface",
    "hugging_face": "huggingface",
    "hf": "huggingface",
}


class ProviderChoice:
    """A normalized provider and, when it was not recognized, the original value."""

    __slots__ = ("original", "provider")

    def __init__(self, provider: str, original: str | None) -> None:
        self.provider = provider
        self.original = original


def normalize_provider(raw: str | None, fallback: str) -> ProviderChoice:
    """Map a provider name to Maxim's enum; unknown or missing names give `fallback`.

    `original` is set whenever the result is not what the sender said, so it can be kept in tags.
    """
    if raw is None or not raw.strip():
        return ProviderChoice(fallback, None)
    key = raw.strip().lower()
    if key in PROVIDER_ALIASES:
        return ProviderChoice(PROVIDER_ALIASES[key], None)
    if key in PROVIDERS:
        return ProviderChoice(key, None)
    # Vercel's `openai.chat` / `anthropic.messages`: the part before the first dot names the provider.
    head = key.split(".", 1)[0]
    if head in PROVIDER_ALIASES:
        return ProviderChoice(PROVIDER_ALIASES[head], None)
    return ProviderChoice(fallback, raw)
