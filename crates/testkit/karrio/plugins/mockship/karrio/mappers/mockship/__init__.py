from karrio.mappers.mockship.mapper import Mapper
from karrio.mappers.mockship.proxy import Proxy
from karrio.mappers.mockship.settings import Settings
