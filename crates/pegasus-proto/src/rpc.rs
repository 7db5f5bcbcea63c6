//! RPC names and typed requests/responses: from a received message to a value the server
//! can dispatch on, and back.

use bytes::Bytes;
use pegasus_core::rrdb::*;

use crate::codec::{BlobC, StructC, ThriftStruct, I64C};
use crate::error::ErrorCode;
use crate::frame::{read_args, read_message_begin, write_args, MessageBegin, ResponseFrame};
use crate::meta::*;
use crate::thrift::{DecodeError, Reader};

macro_rules! rpcs {
    ($(#[$m:meta])* $enum:ident / $resp:ident {
        $( $variant:ident = $name:literal : $codec:ty => $rtype:ty ),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $enum {
            $( #[doc = $name] $variant(<$codec as crate::codec::FieldCodec>::Value), )*
        }

        /// The response to each request kind.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum $resp {
            $( #[doc = concat!($name, "_ACK")] $variant($rtype), )*
        }

        impl $enum {
            /// Every RPC name of this kind.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// The wire name.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                }
            }

            /// Decodes the args struct of the RPC `name`; `Ok(None)` if the name is not ours.
            pub fn decode(name: &str, r: &mut Reader) -> Result<Option<Self>, DecodeError> {
                Ok(Some(match name {
                    $( $name => Self::$variant(read_args::<$codec>(r)?), )*
                    _ => return Ok(None),
                }))
            }

            /// Encodes the args struct `{1: request}`.
            pub fn encode_args(&self) -> Bytes {
                match self {
                    $( Self::$variant(v) => write_args::<$codec>(v), )*
                }
            }
        }

        impl $resp {
            /// The name of the request this answers.
            pub fn request_name(&self) -> &'static str {
                match self {
                    $( Self::$variant(_) => $name, )*
                }
            }

            /// Encodes the response struct (fields + STOP).
            pub fn encode(&self) -> Bytes {
                match self {
                    $( Self::$variant(v) => ThriftStruct::to_bytes(v), )*
                }
            }

            /// Decodes a reply's result struct for the request `name`.
            pub fn decode(name: &str, reply: &crate::frame::IncomingResponse) -> Result<Option<Self>, DecodeError> {
                Ok(Some(match name {
                    $( $name => Self::$variant(reply.decode_result::<$rtype>()?), )*
                    _ => return Ok(None),
                }))
            }
        }
    };
}

rpcs!(
    /// A request to a replica server's `rrdb` service.
    RrdbRequest / RrdbResponse {
        Put = "RPC_RRDB_RRDB_PUT": StructC<UpdateRequest> => UpdateResponse,
        MultiPut = "RPC_RRDB_RRDB_MULTI_PUT": StructC<MultiPutRequest> => UpdateResponse,
        Remove = "RPC_RRDB_RRDB_REMOVE": BlobC => UpdateResponse,
        MultiRemove = "RPC_RRDB_RRDB_MULTI_REMOVE": StructC<MultiRemoveRequest> => MultiRemoveResponse,
        Incr = "RPC_RRDB_RRDB_INCR": StructC<IncrRequest> => IncrResponse,
        CheckAndSet = "RPC_RRDB_RRDB_CHECK_AND_SET": StructC<CheckAndSetRequest> => CheckAndSetResponse,
        CheckAndMutate = "RPC_RRDB_RRDB_CHECK_AND_MUTATE": StructC<CheckAndMutateRequest> => CheckAndSetResponse,
        Get = "RPC_RRDB_RRDB_GET": BlobC => ReadResponse,
        MultiGet = "RPC_RRDB_RRDB_MULTI_GET": StructC<MultiGetRequest> => MultiGetResponse,
        BatchGet = "RPC_RRDB_RRDB_BATCH_GET": StructC<BatchGetRequest> => BatchGetResponse,
        SortkeyCount = "RPC_RRDB_RRDB_SORTKEY_COUNT": BlobC => CountResponse,
        Ttl = "RPC_RRDB_RRDB_TTL": BlobC => TtlResponse,
        GetScanner = "RPC_RRDB_RRDB_GET_SCANNER": StructC<GetScannerRequest> => ScanResponse,
        Scan = "RPC_RRDB_RRDB_SCAN": StructC<ScanRequest> => ScanResponse,
        ClearScanner = "RPC_RRDB_RRDB_CLEAR_SCANNER": I64C => UpdateResponse,
    }
);

rpcs!(
    /// A request to a meta server.
    MetaRequest / MetaResponse {
        QueryConfig = "RPC_CM_QUERY_PARTITION_CONFIG_BY_INDEX": StructC<QueryCfgRequest> => QueryCfgResponse,
        CreateApp = "RPC_CM_CREATE_APP": StructC<CreateAppRequest> => CreateAppResponse,
        DropApp = "RPC_CM_DROP_APP": StructC<DropAppRequest> => DropAppResponse,
        RecallApp = "RPC_CM_RECALL_APP": StructC<RecallAppRequest> => RecallAppResponse,
        ListApps = "RPC_CM_LIST_APPS": StructC<ListAppsRequest> => ListAppsResponse,
        ListNodes = "RPC_CM_LIST_NODES": StructC<ListNodesRequest> => ListNodesResponse,
        ClusterInfo = "RPC_CM_CLUSTER_INFO": StructC<ClusterInfoRequest> => ClusterInfoResponse,
        UpdateAppEnv = "RPC_CM_UPDATE_APP_ENV": StructC<UpdateAppEnvRequest> => UpdateAppEnvResponse,
        ControlMeta = "RPC_CM_CONTROL_META": StructC<MetaControlRequest> => MetaControlResponse,
        GetMaxReplicaCount = "RPC_CM_GET_MAX_REPLICA_COUNT": StructC<GetMaxReplicaCountRequest> => GetMaxReplicaCountResponse,
        SetMaxReplicaCount = "RPC_CM_SET_MAX_REPLICA_COUNT": StructC<SetMaxReplicaCountRequest> => SetMaxReplicaCountResponse,
    }
);

impl RrdbRequest {
    /// Whether the server sends no reply (`clear_scanner` is one-way).
    pub fn is_one_way(&self) -> bool {
        matches!(self, Self::ClearScanner(_))
    }

    /// Whether the request writes.
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Self::Put(_)
                | Self::MultiPut(_)
                | Self::Remove(_)
                | Self::MultiRemove(_)
                | Self::Incr(_)
                | Self::CheckAndSet(_)
                | Self::CheckAndMutate(_)
        )
    }
}

/// A decoded request of either service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Data.
    Rrdb(RrdbRequest),
    /// Meta.
    Meta(MetaRequest),
}

/// What a server makes of a request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedRequest {
    /// A request we know.
    Known {
        /// Message begin (name, seqid).
        message: MessageBegin,
        /// The request.
        request: Request,
    },
    /// A well-formed message with an RPC name we do not serve: answer
    /// `ERR_HANDLER_NOT_FOUND`.
    UnknownRpc(MessageBegin),
    /// A known RPC whose args do not decode: answer `ERR_INVALID_DATA` (the message begin
    /// did decode, so the client can be told which call failed).
    Malformed {
        /// Message begin (name, seqid).
        message: MessageBegin,
        /// What did not decode.
        error: DecodeError,
    },
}

impl ParsedRequest {
    /// The reply to a request this server does not serve: `ERR_INVALID_DATA` for args that
    /// do not decode, `ERR_HANDLER_NOT_FOUND` for any other name (or another service's).
    pub fn refusal(&self) -> ResponseFrame {
        match self {
            Self::Malformed { message, .. } => {
                ResponseFrame::error_to(message, ErrorCode::InvalidData)
            }
            Self::Known { message, .. } | Self::UnknownRpc(message) => {
                ResponseFrame::error_to(message, ErrorCode::HandlerNotFound)
            }
        }
    }
}

impl ResponseFrame {
    /// The `ERR_OK` reply to `message`, carrying the encoded response struct.
    pub fn ok_to(message: &MessageBegin, result: Bytes) -> Self {
        Self {
            error: ErrorCode::Ok,
            name: ack_name(&message.name),
            seqid: message.seqid,
            result: Some(result),
        }
    }

    /// The reply to `message` with `error` and no result.
    pub fn error_to(message: &MessageBegin, error: ErrorCode) -> Self {
        Self {
            error,
            name: ack_name(&message.name),
            seqid: message.seqid,
            result: None,
        }
    }
}

/// Parses a request frame's body: message begin, then the args of a known RPC.
pub fn parse_request(body: Bytes) -> Result<ParsedRequest, DecodeError> {
    let mut r = Reader::new(body);
    let message = read_message_begin(&mut r)?;
    let rrdb = RrdbRequest::decode(&message.name, &mut r).map(|o| o.map(Request::Rrdb));
    let request = match rrdb {
        Ok(None) => MetaRequest::decode(&message.name, &mut r).map(|o| o.map(Request::Meta)),
        other => other,
    };
    Ok(match request {
        Ok(Some(request)) => ParsedRequest::Known { message, request },
        Ok(None) => ParsedRequest::UnknownRpc(message),
        Err(error) => ParsedRequest::Malformed { message, error },
    })
}

/// The reply name of a request name.
pub fn ack_name(request_name: &str) -> String {
    format!("{request_name}_ACK")
}

/// The args / result struct of our own server-to-server RPCs: one binary field carrying a
/// payload whose encoding the runtime chooses (`pegasus-rpc`'s `internal` module).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InternalPayload {
    /// The encoded payload.
    pub data: Bytes,
}
crate::thrift_struct!(InternalPayload { 1: data: crate::codec::BlobC });
