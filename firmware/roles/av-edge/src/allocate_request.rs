//! What an Allocate asks for (RFC 8656 7.2, RFC 6156, RFC 6062), checked before any
//! resource is touched: the attribute combinations the RFCs forbid get their error code
//! here.

use stun_core::{
    attr, AddressFamily, Attribute, AttributeError, Message, TRANSPORT_TCP, TRANSPORT_UDP,
};

use crate::allocation::{ClientTransport, ReservationToken};

/// Which relay port an allocation gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    Any,
    /// EVEN-PORT without the R bit.
    Even,
    /// EVEN-PORT with the R bit: an even port, and the next one reserved.
    EvenWithNext,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateRequest {
    /// RFC 6062 TCP relaying instead of UDP.
    pub tcp: bool,
    /// REQUESTED-ADDRESS-FAMILY; `None` means the relay's primary family.
    pub family: Option<AddressFamily>,
    /// ADDITIONAL-ADDRESS-FAMILY (always IPv6): a dual allocation.
    pub additional_v6: bool,
    pub parity: Parity,
    pub token: Option<ReservationToken>,
    pub dont_fragment: bool,
}

/// An error code and its reason phrase.
pub type Refusal = (u16, &'static str);

const BAD: u16 = 400;

impl AllocateRequest {
    pub fn parse(msg: &Message<'_>, transport: ClientTransport) -> Result<Self, Refusal> {
        let tcp = match msg.get(attr::REQUESTED_TRANSPORT) {
            Ok(Some(Attribute::RequestedTransport(TRANSPORT_UDP))) => false,
            // RFC 6062 TCP allocations need a TCP or TLS control connection.
            Ok(Some(Attribute::RequestedTransport(TRANSPORT_TCP)))
                if transport != ClientTransport::Udp =>
            {
                true
            }
            Ok(Some(Attribute::RequestedTransport(_))) => {
                return Err((442, "Unsupported Transport Protocol"))
            }
            _ => return Err((BAD, "REQUESTED-TRANSPORT is required")),
        };
        let family = match msg.get(attr::REQUESTED_ADDRESS_FAMILY) {
            Ok(Some(Attribute::RequestedAddressFamily(f))) => Some(f),
            Ok(_) => None,
            Err(AttributeError::UnknownAddressFamily(_)) => {
                return Err((440, "Address Family not Supported"))
            }
            Err(_) => return Err((BAD, "Bad REQUESTED-ADDRESS-FAMILY")),
        };
        let additional_v6 = match msg.get(attr::ADDITIONAL_ADDRESS_FAMILY) {
            Ok(Some(Attribute::AdditionalAddressFamily(AddressFamily::V6))) => true,
            Ok(Some(_)) | Err(_) => {
                return Err((BAD, "ADDITIONAL-ADDRESS-FAMILY must be IPv6"));
            }
            Ok(None) => match msg.raw(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT) {
                // coturn's clients ask for dual allocations with the draft code point.
                Some(raw) => match raw.value {
                    [family, 0, 0, 0]
                        if matches!(AddressFamily::from_code(*family), Ok(AddressFamily::V6)) =>
                    {
                        true
                    }
                    _ => return Err((BAD, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")),
                },
                None => false,
            },
        };
        if additional_v6 && family.is_some() {
            return Err((
                BAD,
                "REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY exclude each other",
            ));
        }
        let parity = match msg.get(attr::EVEN_PORT) {
            Ok(Some(Attribute::EvenPort(true))) => Parity::EvenWithNext,
            Ok(Some(_)) => Parity::Even,
            Ok(None) => Parity::Any,
            Err(_) => return Err((BAD, "Bad EVEN-PORT")),
        };
        let token = match msg.get(attr::RESERVATION_TOKEN) {
            Ok(Some(Attribute::ReservationToken(t))) => Some(*t),
            Ok(_) => None,
            Err(_) => return Err((BAD, "Bad RESERVATION-TOKEN")),
        };
        if token.is_some() && parity != Parity::Any {
            return Err((BAD, "EVEN-PORT and RESERVATION-TOKEN exclude each other"));
        }
        if token.is_some() && (family.is_some() || additional_v6) {
            return Err((
                BAD,
                "RESERVATION-TOKEN excludes the address family attributes",
            ));
        }
        if additional_v6 && parity == Parity::EvenWithNext {
            return Err((BAD, "port reservations are for single-family allocations"));
        }
        let dont_fragment = msg.raw(attr::DONT_FRAGMENT).is_some();
        if tcp && (parity != Parity::Any || token.is_some() || dont_fragment || additional_v6) {
            return Err((
                BAD,
                "EVEN-PORT, RESERVATION-TOKEN, DONT-FRAGMENT and ADDITIONAL-ADDRESS-FAMILY are for UDP allocations",
            ));
        }
        Ok(AllocateRequest {
            tcp,
            family,
            additional_v6,
            parity,
            token,
            dont_fragment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stun_core::{Class, EncodeError, MessageEncoder, Method, TransactionId};

    fn parse_with(
        transport: ClientTransport,
        build: impl Fn(&mut MessageEncoder<'_>) -> Result<(), EncodeError>,
    ) -> Result<AllocateRequest, Refusal> {
        let mut buf = Vec::new();
        let mut enc = MessageEncoder::new(
            &mut buf,
            Method::ALLOCATE,
            Class::Request,
            TransactionId([7; 12]),
        );
        build(&mut enc).unwrap_or_else(|e| panic!("{e}"));
        let msg = Message::decode(&buf).unwrap_or_else(|e| panic!("{e}"));
        AllocateRequest::parse(&msg, transport)
    }

    fn udp(extra: &[Attribute<'_>]) -> Result<AllocateRequest, Refusal> {
        parse_with(ClientTransport::Udp, |e| {
            e.add(&Attribute::RequestedTransport(TRANSPORT_UDP))?;
            for a in extra {
                e.add(a)?;
            }
            Ok(())
        })
    }

    fn code(r: Result<AllocateRequest, Refusal>) -> u16 {
        r.map_or_else(|(c, _)| c, |_| 200)
    }

    #[test]
    fn plain_udp_allocate() {
        let r = udp(&[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            r,
            AllocateRequest {
                tcp: false,
                family: None,
                additional_v6: false,
                parity: Parity::Any,
                token: None,
                dont_fragment: false
            }
        );
    }

    #[test]
    fn even_port_reservation_token_and_dont_fragment() {
        let r = udp(&[Attribute::EvenPort(true), Attribute::DontFragment]);
        let r = r.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((r.parity, r.dont_fragment), (Parity::EvenWithNext, true));
        assert_eq!(
            udp(&[Attribute::EvenPort(false)]).map(|r| r.parity),
            Ok(Parity::Even)
        );
        let tok = [5u8; 8];
        assert_eq!(
            udp(&[Attribute::ReservationToken(&tok)]).map(|r| r.token),
            Ok(Some(tok))
        );
        for bad in [
            vec![
                Attribute::ReservationToken(&tok),
                Attribute::EvenPort(false),
            ],
            vec![Attribute::ReservationToken(&tok), Attribute::EvenPort(true)],
            vec![
                Attribute::ReservationToken(&tok),
                Attribute::RequestedAddressFamily(AddressFamily::V4),
            ],
            vec![
                Attribute::ReservationToken(&tok),
                Attribute::AdditionalAddressFamily(AddressFamily::V6),
            ],
            vec![
                Attribute::EvenPort(true),
                Attribute::AdditionalAddressFamily(AddressFamily::V6),
            ],
        ] {
            assert_eq!(code(udp(&bad)), 400, "{bad:?}");
        }
    }

    #[test]
    fn address_families() {
        assert_eq!(
            udp(&[Attribute::RequestedAddressFamily(AddressFamily::V6)]).map(|r| r.family),
            Ok(Some(AddressFamily::V6))
        );
        assert_eq!(
            udp(&[Attribute::AdditionalAddressFamily(AddressFamily::V6)]).map(|r| r.additional_v6),
            Ok(true)
        );
        assert_eq!(
            code(udp(&[Attribute::AdditionalAddressFamily(
                AddressFamily::V4
            )])),
            400
        );
        assert_eq!(
            code(udp(&[
                Attribute::RequestedAddressFamily(AddressFamily::V4),
                Attribute::AdditionalAddressFamily(AddressFamily::V6)
            ])),
            400
        );
        let draft = parse_with(ClientTransport::Udp, |e| {
            e.add(&Attribute::RequestedTransport(TRANSPORT_UDP))?;
            e.add_raw(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT, &[0x02, 0, 0, 0])?;
            Ok(())
        });
        assert_eq!(draft.map(|r| r.additional_v6), Ok(true), "draft code point");
        let draft_v4 = parse_with(ClientTransport::Udp, |e| {
            e.add(&Attribute::RequestedTransport(TRANSPORT_UDP))?;
            e.add_raw(attr::ADDITIONAL_ADDRESS_FAMILY_DRAFT, &[0x01, 0, 0, 0])?;
            Ok(())
        });
        assert_eq!(code(draft_v4), 400);
        let unknown = parse_with(ClientTransport::Udp, |e| {
            e.add(&Attribute::RequestedTransport(TRANSPORT_UDP))?;
            e.add_raw(attr::REQUESTED_ADDRESS_FAMILY, &[0x07, 0, 0, 0])?;
            Ok(())
        });
        assert_eq!(code(unknown), 440);
    }

    #[test]
    fn transports() {
        let tcp = |t| {
            parse_with(t, |e| {
                e.add(&Attribute::RequestedTransport(TRANSPORT_TCP))?;
                Ok(())
            })
        };
        assert_eq!(code(tcp(ClientTransport::Udp)), 442);
        assert_eq!(tcp(ClientTransport::Tcp).map(|r| r.tcp), Ok(true));
        assert_eq!(tcp(ClientTransport::Tls).map(|r| r.tcp), Ok(true));
        let tcp_df = parse_with(ClientTransport::Tcp, |e| {
            e.add(&Attribute::RequestedTransport(TRANSPORT_TCP))?;
            e.add(&Attribute::DontFragment)?;
            Ok(())
        });
        assert_eq!(code(tcp_df), 400);
        let sctp = parse_with(ClientTransport::Udp, |e| {
            e.add(&Attribute::RequestedTransport(132))?;
            Ok(())
        });
        assert_eq!(code(sctp), 442);
        let none = parse_with(ClientTransport::Udp, |_| Ok(()));
        assert_eq!(code(none), 400);
    }
}
