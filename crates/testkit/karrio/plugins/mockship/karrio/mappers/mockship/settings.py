"""mockship connection settings.

No `custom_carrier_name` field: Karrio routes any connection whose credentials
carry that key to the `generic` extension.
"""

import attr
import typing
import jstruct
import karrio.core.models as models
import karrio.core.settings as settings
import karrio.providers.generic.units as generic_units


@attr.s(auto_attribs=True)
class Settings(settings.Settings):
    """mockship connection settings (credentials: `account_number`)."""

    account_number: str = None
    account_country_code: str = None
    test_mode: bool = False
    carrier_id: str = "mockship"
    metadata: dict = {}
    config: dict = {}
    id: str = None

    label_template: models.LabelTemplate = jstruct.JStruct[models.LabelTemplate]
    services: typing.List[models.ServiceLevel] = jstruct.JList[models.ServiceLevel, False, dict(default=generic_units.DEFAULT_SERVICES)]  # type: ignore

    @property
    def carrier_name(self) -> str:
        return "mockship"

    @property
    def shipping_services(self) -> typing.List[models.ServiceLevel]:
        if any(self.services or []):
            return self.services

        return generic_units.DEFAULT_SERVICES
