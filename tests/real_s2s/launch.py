"""Run speech-to-speech's own ``serve`` command (``s2s_pipeline.run_pipeline_command``) with the
stand-in models of ``stub_modules/s2s_stand_in.py``.

What this launcher adds, and nothing else:

1. registers one TTS backend, ``stand-in-tone``, in the server's own ``TTS_BACKENDS`` registry
   (with the registry's own ``_simple_handler_factory``), before the argument classes that list
   the backends are imported;
2. starts the stand-in model server (STT and Chat Completions APIs) on a loopback port;
3. calls ``run_pipeline_command("serve", ...)`` selecting the server's real ``openai`` STT and
   ``chat-completions`` LLM backends pointed at that port, ``stand-in-tone`` as TTS, Smart Turn
   off (its ONNX model is a download), then the arguments given to this script.

usage: python launch.py --port N [more ``speech-to-speech serve`` arguments]
"""

import sys

from s2s_stand_in import ModelServer, ToneTTSHandlerArguments
from speech_to_speech import backend_registry as registry

registry.TTS_BACKENDS["stand-in-tone"] = registry.BackendSpec(
    "stand-in-tone",
    "tts",
    ToneTTSHandlerArguments,
    registry._simple_handler_factory(
        "s2s_stand_in", "ToneTTSHandler", setup_should_listen=True, context_kwargs=True),
    config_prefix="tone_tts",
)

from speech_to_speech.s2s_pipeline import run_pipeline_command  # noqa: E402  (after the registry)

models = ModelServer()
run_pipeline_command("serve", [
    "--host", "127.0.0.1",
    "--stt", "openai", "--openai_stt_base_url", models.base_url, "--openai_stt_model", "stand-in-stt",
    "--llm_backend", "chat-completions", "--responses_api_base_url", models.base_url,
    "--responses_api_api_key", "stand-in", "--model_name", "stand-in-llm",
    "--tts", "stand-in-tone",
    "--smart_turn", "false",
    *sys.argv[1:],
])
