"""The request bodies `d2sd serve` accepts, as pydantic models: OpenAI's chat and text completion
requests, the fields this server honours. Types are strict (a string where a number belongs is a 400,
not silently converted); fields it does not know are ignored, as other local servers do, so clients that
send extras (logprobs, user, ...) keep working."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator, field_validator

from engine.verify import SamplerSettings


def _one_of(what: str) -> WrapValidator:
    """One error for a union field ("must be a string or ..."), not one per member type."""
    def check(value, handler):
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be {what}") from None
    return WrapValidator(check)


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["text"]
    text: str


Strings = Annotated[str | list[str], _one_of("a string or a list of strings")]
Content = Annotated[str | list[TextPart], _one_of('a string or a list of {"type": "text", "text": ...} parts')]


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    include_usage: bool = False


class _Sampling(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    model: str
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0, allow_inf_nan=False)   # OpenAI's default; 0 is greedy
    top_p: float = Field(1.0, gt=0, le=1)
    # llama-server's extensions; the defaults are d2sd's own
    top_k: int = Field(SamplerSettings.top_k, ge=0)
    min_p: float = Field(SamplerSettings.min_p, ge=0, lt=1)
    seed: int | None = Field(None, ge=0)
    stop: Strings | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = 1

    @field_validator("n")
    @classmethod
    def _one_choice(cls, n: int) -> int:
        if n != 1:
            raise ValueError("only n=1 is supported (one answer per request)")
        return n

    def sampler(self) -> SamplerSettings:
        return SamplerSettings(temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                               min_p=self.min_p, seed=self.seed)

    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])


class Message(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: Content

    def plain(self) -> dict:
        """{"role", "content"} as the chat template takes it: a developer message is a system message."""
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(_Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, gt=0)   # the newer name of max_tokens

    def limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    prompt: Strings
    max_tokens: int | None = Field(16, gt=0)   # OpenAI's default for text completions

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, prompt: str | list[str]) -> str | list[str]:
        if isinstance(prompt, list) and len(prompt) != 1:
            raise ValueError("give one prompt (a string, or a list of one string)")
        return prompt

    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]

    def limit(self) -> int | None:
        return self.max_tokens

