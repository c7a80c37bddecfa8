"""Run the partner payouts now (what the monthly beat task does) and print the report.

    manage.py process_partner_payments [--dry-run] [--json]

It first resumes batches left `created` by an earlier run, then, per platform, pays the due pending
payments if they reach the platform's minimum. `--dry-run` reads only: it shows what would be paid and
which batches would be resumed, writes nothing and calls no provider. Safe to run again at any time.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from core.actors import Actor
from leads.services import payouts

ACTOR = Actor.system("process_partner_payments")


class Command(BaseCommand):
    help = "Pay partners their due CareOS lead payments (resumes unfinished batches first)."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="show what would be paid; write nothing")
        parser.add_argument("--json", action="store_true", help="print the report as one JSON object")

    def handle(self, *args, **options):
        report = payouts.payouts_process(dry_run=options["dry_run"], actor=ACTOR)
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict(), indent=2))
            return
        title = "Partner payouts (dry run: nothing written)" if report.dry_run else "Partner payouts"
        self.stdout.write(f"{title} at {report.to_dict()['now']}")
        if report.resumed:
            self.stdout.write("Unfinished batches:")
            for outcome in report.resumed:
                line = f"  {outcome.batch_id} {outcome.platform} {outcome.amount} ({outcome.payments} payments): "
                self.stdout.write(line + outcome.status + (f" - {outcome.error}" if outcome.error else ""))
        if not report.platforms:
            self.stdout.write("No partner platforms.")
        for item in report.platforms:
            line = (
                f"  {item.platform} [{item.backend}, minimum {item.minimum_payout}]: {item.due_count} due payments, "
                f"{item.due_amount} USD -> {item.status}"
            )
            if item.batch_id:
                line += f" ({item.batch_id})"
            if item.error:
                line += f" - {item.error}"
            self.stdout.write(line)
