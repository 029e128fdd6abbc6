"""mockship proxy: nothing here leaves the process."""

import datetime
import karrio.lib as lib
from karrio.api.proxy import Proxy as BaseProxy
from karrio.universal.mappers.rating_proxy import RatingMixinProxy
from karrio.universal.mappers.shipping_proxy import ShippingMixinProxy
from karrio.mappers.mockship.settings import Settings


def create_shipment(self, request: lib.Serializable) -> lib.Deserializable:
    # The mapper answers None for a purchase it refuses: pass that through.
    if request.value is None:
        return lib.Deserializable(None)

    return ShippingMixinProxy.create_shipment(self, request)


def get_tracking(self, request: lib.Serializable) -> lib.Deserializable:
    now = datetime.datetime.now()
    return lib.Deserializable(
        [
            (number, now.strftime("%Y-%m-%d"), now.strftime("%H:%M"))
            for number in request.serialize()
        ]
    )


def cancel_shipment(self, request: lib.Serializable) -> lib.Deserializable:
    return lib.Deserializable(request.serialize())


Proxy = type(
    "Proxy",
    (BaseProxy,),
    dict(
        settings=Settings,
        get_rates=RatingMixinProxy.get_rates,
        create_shipment=create_shipment,
        get_tracking=get_tracking,
        cancel_shipment=cancel_shipment,
    ),
)
