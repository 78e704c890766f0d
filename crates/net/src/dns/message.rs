//! Turning a DNS query into a reply (or a decision to forward it).

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::records::{Answer, QType, Records};

/// Container records are answered with TTL 0, as aardvark-dns: they change
/// whenever containers come and go.
const TTL: u32 = 0;

pub enum Outcome {
    Reply(Vec<u8>),
    Forward(Vec<SocketAddr>),
}

/// Decide what to do with the raw query `bytes` from `src`. None: not a
/// DNS query at all, drop it.
pub fn handle(records: &Records, src: IpAddr, bytes: &[u8]) -> Option<Outcome> {
    let query = Message::from_vec(bytes).ok()?;
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
        reply.metadata.response_code = ResponseCode::NotImp;
        return reply.to_vec().ok().map(Outcome::Reply);
    }
    let q = query.queries[0].clone();
    let qtype = match q.query_type() {
        RecordType::A => QType::A,
        RecordType::PTR => QType::Ptr,
        _ => QType::Other,
    };
    let name = q.name().to_ascii();
    let answer = records.lookup(src, &name, qtype);
    tracing::debug!("dns {src} {name} {:?} -> {answer:?}", q.query_type());
    reply.add_query(q.clone());
    match answer {
        Answer::Forward(ups) => return Some(Outcome::Forward(ups)),
        Answer::NxDomain => reply.metadata.response_code = ResponseCode::NXDomain,
        Answer::NoData => reply.metadata.authoritative = true,
        Answer::Addrs(ips) => {
            reply.metadata.authoritative = true;
            for ip in ips {
                reply.add_answer(Record::from_rdata(q.name().clone(), TTL, RData::A(A(ip))));
            }
        }
        Answer::Ptr(target) => {
            reply.metadata.authoritative = true;
            let target = Name::from_ascii(format!("{target}.")).ok()?;
            reply.add_answer(Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::PTR(PTR(target)),
            ));
        }
    }
    reply.to_vec().ok().map(Outcome::Reply)
}

/// SERVFAIL for a query we could not forward.
pub fn servfail(bytes: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(bytes).ok()?;
    let mut reply = Message::error_msg(
        query.metadata.id,
        query.metadata.op_code,
        ResponseCode::ServFail,
    );
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    for q in query.queries {
        reply.add_query(q);
    }
    reply.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    #[test]
    fn answers_unknown_single_label_with_nxdomain_and_forwards_the_rest() {
        let up: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let r = Records::build(&[], &[], vec![up]);
        let src: IpAddr = "10.0.0.1".parse().unwrap();
        let Some(Outcome::Reply(b)) = handle(&r, src, &query("nothing.", RecordType::A)) else {
            panic!("expected a reply")
        };
        let m = Message::from_vec(&b).unwrap();
        assert_eq!(m.metadata.id, 4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        match handle(&r, src, &query("example.org.", RecordType::A)) {
            Some(Outcome::Forward(u)) => assert_eq!(u, vec![up]),
            _ => panic!("expected forward"),
        }
        assert!(handle(&r, src, b"garbage").is_none());
        let sf = Message::from_vec(&servfail(&query("x.org.", RecordType::A)).unwrap()).unwrap();
        assert_eq!(sf.metadata.response_code, ResponseCode::ServFail);
    }
}
