"""mockship: Waybill's offline test carrier for a real Karrio server.

Rates come from the connection's rate sheet, labels are drawn locally (Karrio's
universal carrier code), trackers and voids answer without any network, and
failures are scripted: see karrio/mappers/mockship/mapper.py.
"""

import karrio.core.metadata as metadata
import karrio.mappers.mockship as mappers
import karrio.providers.generic.units as units

METADATA = metadata.PluginMetadata(
    status="beta",
    id="mockship",
    label="Mockship (Waybill test carrier)",
    description="Offline test carrier: rate sheets, local labels, scripted failures.",
    # Integrations
    Mapper=mappers.Mapper,
    Proxy=mappers.Proxy,
    Settings=mappers.Settings,
    # Data units: the custom carrier's, so rate sheets define the services.
    services=units.Service,
    options=units.Option,
    service_levels=units.DEFAULT_SERVICES,
    connection_configs=units.ConnectionConfig,
    has_intl_accounts=True,
)
