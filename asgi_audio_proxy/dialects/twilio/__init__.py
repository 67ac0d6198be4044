"""Phone calls through Twilio Media Streams: the dialect and the TwiML webhook that opens it.

``AudioProxyMiddleware(app, dialects={"/twilio": twilio_dialect})`` serves the stream;
``TwimlEndpoint`` answers the phone number's voice webhook with TwiML pointing at it.
"""

from __future__ import annotations

from .dialect import (
    DEFAULT_PIECE_MS,
    DEFAULT_PLAYBACK_LEAD_MS,
    StreamState,
    TwilioDialect,
    twilio_dialect,
    twilio_dialect_factory,
)
from .messages import TWILIO_RATE_HZ, TwilioCall
from .playback import PlaybackCounts, ReplyPlayback, UnknownMark
from .twiml import TwimlEndpoint

__all__ = [
    "DEFAULT_PIECE_MS",
    "DEFAULT_PLAYBACK_LEAD_MS",
    "TWILIO_RATE_HZ",
    "PlaybackCounts",
    "ReplyPlayback",
    "StreamState",
    "TwilioCall",
    "TwilioDialect",
    "TwimlEndpoint",
    "UnknownMark",
    "twilio_dialect",
    "twilio_dialect_factory",
]
