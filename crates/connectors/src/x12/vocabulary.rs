//! X12 214 status vocabulary → Waybill's taxonomy: AT7-01 shipment status codes
//! (element 1650) to event types, AT7-02 reason codes (element 1651) to Karrio-style
//! reason families, exactly as in EVENTS.md §2.2 (the "X12 214 AT7-01" column and the
//! reason-mapping paragraph under the table).
//!
//! Code names are those of the X12 004010 code list for element 1650 (as published by
//! Stedi, <https://www.stedi.com/edi/x12-004010/element/1650>, and in kputnam/stupidedi
//! `lib/stupidedi/versions/004010/element_defs.rb`).

use waybill_model::EventType;

/// The event type for an AT7-01 status code, and whether the code is in the mapping
/// table. Codes outside it map to `shipment.in_transit` (their parent status: a status
/// message about a shipment that moves) with reason `unknown` — never rejected (EVENTS.md
/// §2.1, "unknown subcodes must map to the parent status + reason=unknown").
pub fn event_type(status: &str) -> (EventType, bool) {
    let ty = match status {
        "XB" => EventType::ShipmentBooked,
        "AF" | "CP" => EventType::ShipmentDispatched,
        "X4" | "P1" | "R1" | "J1" | "K1" => EventType::ShipmentInTransit,
        "X6" | "X1" => EventType::ShipmentOutForDelivery,
        "AH" | "AP" => EventType::ShipmentDeliveryAttempted,
        "D1" | "CD" | "CB" | "PA" => EventType::ShipmentDelivered,
        "SD" => EventType::ShipmentDelayed,
        "PR" => EventType::ShipmentOnHold,
        "A7" | "A9" => EventType::ShipmentException,
        "A3" => EventType::ShipmentReturned,
        "CA" => EventType::ShipmentCancelled,
        _ => return (EventType::ShipmentInTransit, false),
    };
    (ty, true)
}

/// The reason family an AT7-02 code names; `None` for codes without one (e.g. `NS`
/// normal status, `NA` normal appointment), `Some("unknown")` for codes not in the table.
pub fn reason_family(code: &str) -> Option<&'static str> {
    Some(match code {
        "NS" | "NA" => return None,
        "A2" => "consignee_incorrect_address",
        "BS" => "consignee_refused",
        "AQ" => "consignee_not_available",
        "B1" => "consignee_business_closed",
        "AO" => "weather_delay",
        // EVENTS.md: `AS`, `CA`, `AR` → `customs_*`; split by what each code says.
        "AS" | "AR" => "customs_documentation",
        "CA" => "customs_delay",
        "AA" => "carrier_sorting_error",
        "AI" => "carrier_vehicle_issue",
        // EVENTS.md: `B4` held for payment, `C8`/`C9` COD → `consignee_*`/`customs_duties_unpaid`.
        "B4" => "customs_duties_unpaid",
        "C8" | "C9" => "consignee_cod_unpaid",
        _ => "unknown",
    })
}

/// The reason a status code implies by itself, used when AT7-02 gives none
/// (EVENTS.md: `A7` → `consignee_refused`, `A9` → `carrier_damaged_parcel`).
pub fn implied_reason(status: &str) -> Option<&'static str> {
    match status {
        "A7" => Some("consignee_refused"),
        "A9" => Some("carrier_damaged_parcel"),
        _ => None,
    }
}

/// The reason for a status: AT7-02's family; else the status's implied reason; else
/// `unknown` when the status code itself is not in the table.
pub fn reason(status: &str, known_status: bool, at7_02: Option<&str>) -> Option<&'static str> {
    at7_02
        .and_then(reason_family)
        .or_else(|| implied_reason(status))
        .or((!known_status).then_some("unknown"))
}

/// The X12 004010 name of an AT7-01 status code (element 1650), if listed there.
pub fn status_name(status: &str) -> Option<&'static str> {
    Some(match status {
        "A3" => "Shipment Returned to Shipper",
        "A7" => "Refused by Consignee",
        "A9" => "Shipment Damaged",
        "AA" => "Estimated Pick Up",
        "AF" => "Carrier Departed Pick-up Location with Shipment",
        "AG" => "Estimated Delivery",
        "AH" => "Attempted Delivery",
        "AI" => "Shipment has been Reconsigned",
        "AJ" => "Tendered for Delivery",
        "AM" => "Loaded on Truck",
        "AN" => "Diverted to Air Carrier",
        "AP" => "Delivery Not Completed",
        "AR" => "Rail Arrival at Destination Intermodal Ramp",
        "AV" => "Available for Delivery",
        "B6" => "Estimated to Arrive at Carrier Terminal",
        "BA" => "Connecting Line or Cartage Pick-up",
        "BC" => "Storage in Transit",
        "C1" => "Estimated to Depart Terminal Location",
        "CA" => "Shipment Cancelled",
        "CD" => "Carrier Departed Delivery Location",
        "CL" => "Trailer Closed Out",
        "CP" => "Completed Loading at Pick-up Location",
        "D1" => "Completed Unloading at Delivery Location",
        "I1" => "In-Gate",
        "J1" => "Delivered to Connecting Line",
        "K1" => "Arrived at Customs",
        "L1" => "Loading",
        "OA" => "Out-Gate",
        "OO" => "Paperwork Received - Did not Receive Shipment or Equipment",
        "P1" => "Departed Terminal Location",
        "PR" => "U.S. Customs Hold at In-Bond Location",
        "R1" => "Received from Prior Carrier",
        "RL" => "Rail Departure from Origin Intermodal Ramp",
        "S1" => "Trailer Spotted at Consignee's Location",
        "SD" => "Shipment Delayed",
        "X1" => "Arrived at Delivery Location",
        "X2" => "Estimated Date and/or Time of Arrival at Consignee's Location",
        "X3" => "Arrived at Pick-up Location",
        "X4" => "Arrived at Terminal Location",
        "X5" => "Arrived at Delivery Location Loading Dock",
        "X6" => "En Route to Delivery Location",
        "X8" => "Arrived at Pick-up Location Loading Dock",
        "XB" => "Shipment Acknowledged",
        _ => return None,
    })
}
