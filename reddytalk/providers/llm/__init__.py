"""Language model adapters: Azure OpenAI chat completions, streamed."""
