"""CareOS leads: partner platforms (e.g. BusinessOS) post consented leads; we create the CareOS user and
the lead, send a welcome SMS, and owe the partner `lead_value_agreed`, paid out monthly.

Phone numbers arrive RSA-OAEP encrypted under one of CareOS's key pairs (`CareosKeyPair`, several may
decrypt during a rotation); they are stored encrypted (core.encryption) with a keyed-hash column for dedup, and
never logged. Partner API keys are stored as SHA-256 digests (they are 238 random bits) and shown once.
Money is Decimal, USD.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from core.encryption import BlindIndexField, EncryptedJSONField, EncryptedTextField
from core.ids import public_id_default


class PartnerPlatform(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    class PayoutBackend(models.TextChoices):
        MANUAL = "manual", "Manual (staff pay and mark paid)"
        STRIPE = "stripe", "Stripe transfer to the connected account"

    slug = models.SlugField(max_length=40, unique=True)  # the X-Platform header and source_platform
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    contact_name = models.CharField(max_length=200, blank=True)
    contact_email = EncryptedTextField(null=True, blank=True)  # payout notifications
    # The salt both sides append to the phone before SHA-256 (spec: PHONE_HASH_SALT).
    phone_hash_salt = EncryptedTextField()
    minimum_payout = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("50.00"))
    payout_backend = models.CharField(max_length=20, choices=PayoutBackend.choices, default=PayoutBackend.MANUAL)
    stripe_account_id = models.CharField(max_length=100, blank=True)  # "acct_..." destination
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def user_source(self) -> str:
        return f"{self.slug}_referral"


class PlatformApiKey(models.Model):
    """`{slug}_{live|test}_{key_id}_{secret}`: found by key_id, checked against a SHA-256 digest.
    Several keys may be live at once (rotation without downtime); each may expire."""

    class Environment(models.TextChoices):
        LIVE = "live", "Live"
        TEST = "test", "Test"

    platform = models.ForeignKey(PartnerPlatform, on_delete=models.CASCADE, related_name="api_keys")
    environment = models.CharField(max_length=10, choices=Environment.choices)
    key_id = models.CharField(max_length=32, unique=True)
    key_digest = models.CharField(max_length=64)
    key_hint = models.CharField(max_length=80)  # "businessos_live_<key_id>…" for the admin; not a secret
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key_hint


class CareosKeyPair(models.Model):
    """An RSA key pair partners encrypt phones to. The newest active pair is the one handed out; older
    active pairs still decrypt until retired (6-month rotation). The private key is encrypted at rest;
    a pair loaded from CAREOS_PRIVATE_KEY is not stored (see leads/crypto.py)."""

    fingerprint = models.CharField(max_length=64, unique=True)  # sha256 of the DER public key, hex
    public_pem = models.TextField()
    private_pem = EncryptedTextField()
    key_size = models.PositiveSmallIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"RSA-{self.key_size} {self.fingerprint[:16]}"


class CareUser(models.Model):
    """A CareOS user (not a platform login). Deduplicated by phone through `phone_index`."""

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("user"), editable=False)
    phone = EncryptedTextField()  # E.164
    phone_index = BlindIndexField(unique=True)  # blind_index(E.164, purpose="leads.user.phone")
    name = EncryptedTextField(null=True, blank=True)
    language = models.CharField(max_length=10, default="en")
    source = models.CharField(max_length=60)  # "businessos_referral", ...
    source_platform = models.ForeignKey(
        PartnerPlatform, null=True, blank=True, on_delete=models.PROTECT, related_name="users"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    # When the last welcome SMS to this person was queued, whichever partner referred them: at most one
    # per CAREOS_REFERRAL_PERIOD_DAYS (docs/careos.md, "Partners see only their own").
    welcome_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.public_id


class PartnerUser(models.Model):
    """The person as one partner platform knows them: `public_id` is the `careos_user_id` that partner
    is given. One per (platform, person), each with an unrelated id, so two partners cannot match their
    referrals by id; the CareUser (and its own public_id) stays internal."""

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("user"), editable=False)
    # Indexed by leads_one_id_per_partner_person (platform first): a second index on platform alone only costs writes.
    platform = models.ForeignKey(
        PartnerPlatform, on_delete=models.PROTECT, related_name="partner_users", db_index=False
    )
    user = models.ForeignKey(CareUser, on_delete=models.PROTECT, related_name="partner_ids")
    created_at = models.DateTimeField(default=timezone.now)  # this platform's first lead for the person

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["platform", "user"], name="leads_one_id_per_partner_person")]

    def __str__(self) -> str:
        return self.public_id


class Lead(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("lead"), editable=False)
    # Indexed by leads_one_per_conversation (platform first); `user` by leads_lead_user_created (user first).
    platform = models.ForeignKey(PartnerPlatform, on_delete=models.PROTECT, related_name="leads", db_index=False)
    source_conversation_id = models.CharField(max_length=200)
    user = models.ForeignKey(CareUser, on_delete=models.PROTECT, related_name="leads", db_index=False)
    # The person's id as this platform knows it (the answer's careos_user_id).
    partner_user = models.ForeignKey(PartnerUser, on_delete=models.PROTECT, related_name="leads")
    # New to THIS platform (its first lead for the person), as answered; never about other platforms.
    is_new_user = models.BooleanField("new to this partner")
    # Set when the lead earned no payment: the person's paid lead within the period (any platform's).
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="+", verbose_name="unpaid duplicate of"
    )
    user_name = EncryptedTextField(null=True, blank=True)
    language = models.CharField(max_length=10)
    # Where the person is and what they need is protected data (issue 10 finding 7): encrypted, as the
    # message and the name. Country stays plain (two letters; the admin filters on nothing here).
    location_state = EncryptedTextField(blank=True, default="")
    location_country = models.CharField(max_length=2, blank=True)
    location_city = EncryptedTextField(blank=True, default="")
    source_category = models.CharField(max_length=60)
    category = models.CharField(max_length=60)  # CareOS category after mapping
    subcategory = EncryptedTextField(blank=True, default="")
    original_message = EncryptedTextField()
    ai_extracted_details = EncryptedJSONField(default=dict)
    consent_timestamp = models.DateTimeField()
    lead_value = models.DecimalField(max_digits=12, decimal_places=2)
    will_contact = models.BooleanField(default=False)
    # messaging public id (msg_...); empty when no SMS was queued for this lead (refused, or the person
    # already had one within the period).
    welcome_message_id = models.CharField(max_length=40, blank=True)
    # Set by the ingest from its clock (the period rules compare it), so not auto_now_add.
    created_at = models.DateTimeField(default=timezone.now)
    # The key pair that decrypted the phone (null: CAREOS_PRIVATE_KEY, or a lead from before this was kept):
    # the admin's retire page derives each pair's last decrypt and the platforms encrypting to it from it.
    key_pair = models.ForeignKey(
        CareosKeyPair, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "source_conversation_id"], name="leads_one_per_conversation")
        ]
        indexes = [
            models.Index(fields=["user", "created_at"], name="leads_lead_user_created"),
            # A pair's latest lead per platform: one index probe each (leads.selectors.keypair_usage).
            models.Index(fields=["key_pair", "platform", "created_at"], name="leads_lead_keypair_use"),
        ]

    def __str__(self) -> str:
        return self.public_id


class PayoutBatch(models.Model):
    """One payout to one partner. Written (status `created`) before the provider is called, so a crash
    never loses track of money in flight; the provider call is idempotent per batch."""

    class Status(models.TextChoices):
        CREATED = "created", "Created"
        AWAITING_MANUAL = "awaiting_manual", "Awaiting manual payment"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    public_id = models.CharField(max_length=40, unique=True, default=public_id_default("payout"), editable=False)
    platform = models.ForeignKey(PartnerPlatform, on_delete=models.PROTECT, related_name="payout_batches")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    backend = models.CharField(max_length=20, choices=PartnerPlatform.PayoutBackend.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    idempotency_key = models.CharField(max_length=80, unique=True)
    provider_reference = models.CharField(max_length=100, blank=True)  # Stripe transfer id, bank ref...
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "payout batches"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.public_id


class PartnerPayment(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        DISPUTED = "disputed", "Disputed"
        CANCELLED = "cancelled", "Cancelled"

    lead = models.OneToOneField(Lead, on_delete=models.PROTECT, related_name="payment")
    # Indexed by leads_payment_due (platform first).
    platform = models.ForeignKey(PartnerPlatform, on_delete=models.PROTECT, related_name="payments", db_index=False)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    due_at = models.DateTimeField()
    batch = models.ForeignKey(PayoutBatch, null=True, blank=True, on_delete=models.PROTECT, related_name="payments")
    paid_at = models.DateTimeField(null=True, blank=True)
    status_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="leads_payment_positive"),
            # A paid payment belongs to the batch that paid it.
            models.CheckConstraint(condition=~Q(status="paid") | Q(paid_at__isnull=False), name="leads_paid_has_time"),
        ]
        indexes = [models.Index(fields=["platform", "status", "due_at"], name="leads_payment_due")]

    def __str__(self) -> str:
        return f"payment for {self.lead_id} ({self.status})"
