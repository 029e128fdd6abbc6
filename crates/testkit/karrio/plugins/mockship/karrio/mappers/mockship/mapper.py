"""mockship mapper: the universal carrier's rating and labels, plus scripted failures.

- purchase refused (424 MOCK_PURCHASE_REJECTED) when the connection's
  `metadata.fail_purchase` is true or a parcel's `reference_number` starts with
  `FAIL-BUY`; rates still come back, so another rate of the draft can be bought;
- void refused (424 MOCK_VOID_REJECTED) for a tracking number starting with `FAIL`;
- tracking: one `pending` event for any number, an error for numbers starting
  with `FAIL` (404 MOCK_TRACKING_NOT_FOUND).
"""

import typing
import karrio.lib as lib
import karrio.core.models as models
from karrio.api.mapper import Mapper as BaseMapper
from karrio.universal.providers.rating import parse_rate_response, rate_request
from karrio.universal.providers.shipping import (
    parse_shipment_response,
    shipment_request,
)
from karrio.mappers.mockship.settings import Settings


def _is_true(value) -> bool:
    return value is True or str(value).strip().lower() in ("true", "1", "yes")


class Mapper(BaseMapper):
    settings: Settings

    def _message(self, code: str, message: str) -> models.Message:
        return models.Message(
            carrier_id=self.settings.carrier_id,
            carrier_name=self.settings.carrier_name,
            code=code,
            message=message,
        )

    # Rating: the rate sheet.

    def create_rate_request(self, payload: models.RateRequest) -> lib.Serializable:
        return rate_request(payload, self.settings)

    def parse_rate_response(
        self, response: lib.Deserializable
    ) -> typing.Tuple[typing.List[models.RateDetails], typing.List[models.Message]]:
        return parse_rate_response(response, self.settings)

    # Shipping: a local label, or a scripted refusal.

    def create_shipment_request(
        self, payload: models.ShipmentRequest
    ) -> lib.Serializable:
        refs = [p.reference_number or "" for p in payload.parcels]
        refused = _is_true((self.settings.metadata or {}).get("fail_purchase")) or any(
            ref.startswith("FAIL-BUY") for ref in refs
        )
        if refused:
            return lib.Serializable(None)

        return shipment_request(payload, self.settings)

    def parse_shipment_response(
        self, response: lib.Deserializable
    ) -> typing.Tuple[models.ShipmentDetails, typing.List[models.Message]]:
        if response.value is None:
            return None, [
                self._message(
                    "MOCK_PURCHASE_REJECTED",
                    "carrier rejected the shipment (simulated outage)",
                )
            ]

        return parse_shipment_response(response, self.settings)

    # Tracking: offline.

    def create_tracking_request(
        self, payload: models.TrackingRequest
    ) -> lib.Serializable:
        return lib.Serializable(list(payload.tracking_numbers))

    def parse_tracking_response(
        self, response: lib.Deserializable
    ) -> typing.Tuple[typing.List[models.TrackingDetails], typing.List[models.Message]]:
        details: typing.List[models.TrackingDetails] = []
        messages: typing.List[models.Message] = []

        for number, date, time in response.deserialize():
            if number.startswith("FAIL"):
                messages.append(
                    self._message(
                        "MOCK_TRACKING_NOT_FOUND",
                        f"tracking number {number} not found",
                    )
                )
                continue

            details.append(
                models.TrackingDetails(
                    carrier_id=self.settings.carrier_id,
                    carrier_name=self.settings.carrier_name,
                    tracking_number=number,
                    status="pending",
                    delivered=False,
                    events=[
                        models.TrackingEvent(
                            date=date,
                            time=time,
                            code="PRE_TRANSIT",
                            status="pending",
                            description="Shipment information received",
                        )
                    ],
                )
            )

        return details, messages

    # Void: echoes the identifier, or a scripted refusal.

    def create_cancel_shipment_request(
        self, payload: models.ShipmentCancelRequest
    ) -> lib.Serializable:
        return lib.Serializable(payload.shipment_identifier)

    def parse_cancel_shipment_response(
        self, response: lib.Deserializable
    ) -> typing.Tuple[models.ConfirmationDetails, typing.List[models.Message]]:
        identifier = response.deserialize() or ""
        if identifier.startswith("FAIL"):
            return None, [
                self._message(
                    "MOCK_VOID_REJECTED",
                    f"label {identifier} already scanned; cannot be voided",
                )
            ]

        return (
            models.ConfirmationDetails(
                carrier_id=self.settings.carrier_id,
                carrier_name=self.settings.carrier_name,
                success=True,
                operation="Cancel Shipment",
            ),
            [],
        )
