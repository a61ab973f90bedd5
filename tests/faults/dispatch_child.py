"""A dispatcher process for the fault tests: sends the outbox to the fake provider until nothing is left.

Settings come from the environment (DATABASE_URL, DATA_KEY, TWILIO_*, DISPATCH_*), as `serve` reads them.
Prints "sending" once it runs and "sent N" (its share) when the outbox is done, then exits 0.
"""

from __future__ import annotations

import asyncio
import sys

from bot.clock import utcnow
from bot.config import load_settings
from storage.db import make_engine, session_factory
from tests.faults.outbox import sms_dispatcher, unfinished


async def main() -> int:
    """Run the dispatcher until no delivery is queued or being sent."""
    settings = load_settings()  # from the environment, as the real process reads it
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    dispatcher, twilio = sms_dispatcher(sessions, settings, utcnow)
    running = asyncio.create_task(dispatcher.run())
    print("sending", flush=True)
    try:
        while unfinished(sessions):
            if running.done():
                running.result()
                return 1
            await asyncio.sleep(0.1)
    finally:
        dispatcher.stop()
        await running
        await twilio.aclose()
        engine.dispose()
    # The run's own count of what this process sent (no public accessor: only tests want it).
    print(f"sent {dispatcher._report.sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
