"""What a deployment must set before `bot run` serves a platform (`bot.privacy.notice`):
the tests and benchmarks that start one set these."""

PRIVACY_CONTACTS = {
    "BOT_PRIVACY_CONTROLLER": "StreamVerse Test Ltd",
    "BOT_PRIVACY_CONTACT": "privacy@streamverse.test",
    "BOT_PRIVACY_DPO_CONTACT": "dpo@streamverse.test",
}
