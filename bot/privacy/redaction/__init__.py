"""Detectors behind `bot.privacy.redact`, one kind of data per module.

Libraries do the validation wherever a well-kept one exists (licences checked, none of
them downloads anything at run time: their metadata ships inside the wheel):

* `phonenumbers` 9.x (Apache-2.0), Google's libphonenumber metadata: is a digit run a
  valid number of one of the configured regions (`[privacy] phone_regions`)?
* `python-stdnum` 2.x (LGPL-2.1-or-later, used unmodified as a library): IBAN (ISO 13616
  check digits and each country's BBAN format), Luhn, ISBN and EAN check digits.
* `email-validator` 2.x (Unlicense) with `idna` (BSD-3-Clause) and `dnspython` (ISC, not
  used: deliverability checks are off, so no DNS query is ever made): RFC 5322/6531
  syntax, internationalised local parts and domains, punycode.

Our own code does only what no library does: finding candidates in free chat, the
provider token rule set (`secret_rules`), platform markup, our placeholder grammar and the
guards that keep episode codes, order numbers, prices and dates readable.
"""
