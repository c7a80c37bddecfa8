"""Floor process for bench/careos_ingest.py: the least any ingest must do per lead, in a loop, in-process
on the same database: RSA-OAEP-SHA256 decrypt of the phone (leads.crypto.decrypt_phone, keys parsed
once) and one transaction inserting one row (a CareUser: phone Fernet-encrypted + its blind index).
No HTTP, no authentication, no validation, no lead, payment, SMS or audit rows.

Protocol like bench/_careos_load.py: parent -> {"file": path, "warmup": W} (JSON lines
{"ciphertext", "phone"}), child prints {"ready": true}; parent -> {"go": true}, child prints
{"latencies", "start", "end"}; {"quit": true} or EOF ends it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["DJANGO_SETTINGS_MODULE"] = "bench._careos_settings"


def main() -> None:
    import django

    django.setup()
    from django.db import transaction

    from core.encryption import blind_index
    from leads import crypto
    from leads.models import CareUser, PartnerPlatform

    platform = PartnerPlatform.objects.get(slug=os.environ["CAREOS_BENCH_PLATFORM"])
    keys = crypto.active_private_keys()

    def one(item: dict) -> None:
        phone = crypto.decrypt_phone(item["ciphertext"], keys)
        assert phone == item["phone"]
        with transaction.atomic():
            CareUser.objects.create(
                phone=phone,
                phone_index=blind_index(phone, purpose="leads.user.phone"),
                source=f"{platform.slug}_floor",
                source_platform=platform,
            )

    for line in sys.stdin:
        command = json.loads(line)
        if command.get("quit"):
            return
        items = [json.loads(row) for row in Path(command["file"]).read_text().splitlines()]
        warmup = command["warmup"]
        for item in items[:warmup]:
            one(item)
        print(json.dumps({"ready": True}), flush=True)
        if not json.loads(sys.stdin.readline()).get("go"):
            return
        latencies = []
        start = time.time()
        for item in items[warmup:]:
            began = time.perf_counter()
            one(item)
            latencies.append(time.perf_counter() - began)
        end = time.time()
        print(json.dumps({"latencies": latencies, "start": start, "end": end}), flush=True)


if __name__ == "__main__":
    main()
