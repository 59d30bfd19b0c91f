"""Is this digit run a phone number? libphonenumber's metadata decides, per region.

Candidates are found by our own scan (`bot.privacy.redact`): `phonenumbers.PhoneNumberMatcher`
was measured first and left out because it parses one region per pass (100-300 us per
message and region warm, 3-5 ms cold; a fan base needs dozens of regions), does not start a
number glued to a comma ("Office,+44 ...") and matches dates ("2026-11-22") as Danish
numbers. Here a run is checked only against the regions whose national numbers can have
its length, so a check costs one or two `parse` + `is_valid_number` calls (about 20 us).
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType

#: The default `[privacy] phone_regions`: the countries most of an international,
#: English/European/Latin American/Asian fan base writes from. NANP (US) covers Canada and
#: the Caribbean too. Numbers written with "+" or "00" are found whatever this holds.
DEFAULT_REGIONS: tuple[str, ...] = (
    "US", "CA", "GB", "IE", "AU", "NZ", "IN", "ZA", "NG", "PH", "SG", "MY", "ID", "JP", "KR",
    "FR", "DE", "ES", "IT", "PT", "NL", "BE", "LU", "CH", "AT", "DK", "SE", "NO", "FI", "PL",
    "CZ", "GR", "RO", "HU", "TR", "UA", "IL", "BR", "MX", "AR", "CL", "CO", "PE",
)  # fmt: skip


def known_region(code: str) -> bool:
    """Whether libphonenumber has metadata for this ISO 3166 region code."""
    return code in phonenumbers.SUPPORTED_REGIONS


class PhoneBook:
    """The configured regions, indexed by the national number lengths each allows."""

    def __init__(self, regions: tuple[str, ...] = DEFAULT_REGIONS) -> None:
        self.regions = tuple(r for r in regions if known_region(r))
        self._by_length: dict[int, list[str]] = {}
        for region in self.regions:
            metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            assert metadata is not None and metadata.general_desc is not None  # known_region() kept regions with metadata
            prefix = metadata.national_prefix or ""
            for length in metadata.general_desc.possible_length or ():
                for total in {length, length + len(prefix)} if prefix else {length}:
                    regions_for = self._by_length.setdefault(total, [])
                    if region not in regions_for:
                        regions_for.append(region)

    def international(self, digits: str) -> bool:
        """`digits` after "+" (or "00"): a valid or at least possible number anywhere."""
        return _international(digits)

    def national(self, digits: str, mobile_only: bool = False) -> bool:
        """A valid national number of one of the configured regions."""
        for region in self._by_length.get(len(digits), ()):
            if _national(digits, region, mobile_only):
                return True
        return False


def _international(digits: str) -> bool:
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) or phonenumbers.is_possible_number(number)


def _national(digits: str, region: str, mobile_only: bool) -> bool:
    try:
        number = phonenumbers.parse(digits, region)
    except NumberParseException:
        return False
    if not phonenumbers.is_valid_number(number):
        return False
    if mobile_only:
        return phonenumbers.number_type(number) in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return True
