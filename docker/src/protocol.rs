//! The plugin protocol's JSON, shaped (and named) as libnetwork's remote driver API writes it
//! (`libnetwork/drivers/remote/api`, `libnetwork/ipams/remote/api`). Requests are read with
//! serde; a field Docker always sends is required, so a request without it is refused (400).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `Plugin.Activate`'s answer.
#[derive(Serialize)]
pub struct Activate {
    /// The APIs served.
    #[serde(rename = "Implements")]
    pub implements: Vec<&'static str>,
}

/// `NetworkDriver.GetCapabilities`'s answer.
#[derive(Serialize)]
pub struct NetworkCapabilities {
    /// `local`, or `global` when the pools live in a store shared by hosts.
    #[serde(rename = "Scope")]
    pub scope: &'static str,
    /// The same.
    #[serde(rename = "ConnectivityScope")]
    pub connectivity_scope: &'static str,
}

/// `IpamDriver.GetCapabilities`'s answer.
#[derive(Serialize)]
pub struct IpamCapabilities {
    /// Whether RequestAddress wants the endpoint's MAC.
    #[serde(rename = "RequiresMACAddress")]
    pub requires_mac_address: bool,
    /// Whether dockerd should replay RequestPool/RequestAddress after a restart (never: the
    /// plugin keeps its pools and leases).
    #[serde(rename = "RequiresRequestReplay")]
    pub requires_request_replay: bool,
}

/// `IpamDriver.GetDefaultAddressSpaces`'s answer.
#[derive(Serialize)]
pub struct AddressSpaces {
    /// For local-scope networks.
    #[serde(rename = "LocalDefaultAddressSpace")]
    pub local: &'static str,
    /// For global-scope networks.
    #[serde(rename = "GlobalDefaultAddressSpace")]
    pub global: &'static str,
}

/// `IpamDriver.RequestPool`.
#[derive(Deserialize, Debug)]
pub struct RequestPool {
    /// Address space (`local`, `global`, or the user's).
    #[serde(rename = "AddressSpace")]
    pub address_space: String,
    /// `--subnet` (empty: Docker asks the driver for one).
    #[serde(rename = "Pool", default)]
    pub pool: String,
    /// `--ip-range`.
    #[serde(rename = "SubPool", default)]
    pub sub_pool: String,
    /// `--ipam-opt`.
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
    /// An IPv6 pool.
    #[serde(rename = "V6", default)]
    pub v6: bool,
}

/// `IpamDriver.RequestPool`'s answer.
#[derive(Serialize)]
pub struct PoolResponse {
    /// The id later calls name the pool by.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The pool's CIDR.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// Nothing.
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleasePool`.
#[derive(Deserialize, Debug)]
pub struct ReleasePool {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
}

/// `IpamDriver.RequestAddress`.
#[derive(Deserialize, Debug)]
pub struct RequestAddress {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// A wanted address (`--ip`, `--gateway`, an aux address), empty for any.
    #[serde(rename = "Address", default)]
    pub address: String,
    /// `RequestAddressType` (`com.docker.network.gateway`), the endpoint's MAC.
    #[serde(rename = "Options", default)]
    pub options: Option<BTreeMap<String, String>>,
}

/// The `RequestAddressType` of the gateway's request.
pub const GATEWAY_REQUEST: &str = "com.docker.network.gateway";

/// The `RequestAddress` option holding the endpoint's MAC (sent when the IPAM driver's
/// capabilities say `RequiresMACAddress`).
pub const MAC_OPTION: &str = "com.docker.network.endpoint.macaddress";

/// `IpamDriver.RequestAddress`'s answer.
#[derive(Serialize)]
pub struct AddressResponse {
    /// The address with the pool's prefix length.
    #[serde(rename = "Address")]
    pub address: String,
    /// Nothing.
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

/// `IpamDriver.ReleaseAddress`.
#[derive(Deserialize, Debug)]
pub struct ReleaseAddress {
    /// The pool.
    #[serde(rename = "PoolID")]
    pub pool_id: String,
    /// The address.
    #[serde(rename = "Address")]
    pub address: String,
}

/// One pool of a network, as `CreateNetwork` describes it.
#[derive(Deserialize, Debug)]
pub struct IpamData {
    /// Address space.
    #[serde(rename = "AddressSpace", default)]
    pub address_space: String,
    /// The pool's CIDR.
    #[serde(rename = "Pool")]
    pub pool: String,
    /// The gateway, with the prefix length (`10.0.0.1/24`).
    #[serde(rename = "Gateway", default)]
    pub gateway: String,
    /// `--aux-address` names and addresses (with prefix length).
    #[serde(rename = "AuxAddresses", default)]
    pub aux_addresses: Option<BTreeMap<String, String>>,
}

/// `CreateNetwork`'s `Options`.
#[derive(Deserialize, Debug, Default)]
pub struct NetworkOptions {
    /// `-o KEY=VALUE`.
    #[serde(rename = "com.docker.network.generic", default)]
    pub generic: Option<BTreeMap<String, String>>,
    /// `--ipv6`.
    #[serde(rename = "com.docker.network.enable_ipv6", default)]
    pub enable_ipv6: Option<bool>,
    /// `--internal` (libnetwork's label is `internal`).
    #[serde(rename = "internal", alias = "com.docker.network.internal", default)]
    pub internal: Option<bool>,
}

/// `NetworkDriver.CreateNetwork`.
#[derive(Deserialize, Debug)]
pub struct CreateNetwork {
    /// Docker's network id (64 hex digits): the underlay network's name.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Options.
    #[serde(rename = "Options", default)]
    pub options: Option<NetworkOptions>,
    /// IPv4 pools.
    #[serde(rename = "IPv4Data", default)]
    pub ipv4_data: Option<Vec<IpamData>>,
    /// IPv6 pools.
    #[serde(rename = "IPv6Data", default)]
    pub ipv6_data: Option<Vec<IpamData>>,
}

/// Calls that name a network only (`DeleteNetwork`).
#[derive(Deserialize, Debug)]
pub struct NetworkRef {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An endpoint's interface as `CreateEndpoint` gives (and its answer may complete) it.
#[derive(Deserialize, Serialize, Debug, Default)]
pub struct Interface {
    /// IPv4 address with prefix length (empty: none).
    #[serde(rename = "Address", default)]
    pub address: String,
    /// IPv6 address with prefix length (empty: none).
    #[serde(rename = "AddressIPv6", default)]
    pub address_ipv6: String,
    /// MAC (empty: the driver's choice).
    #[serde(rename = "MacAddress", default)]
    pub mac_address: String,
}

/// `NetworkDriver.CreateEndpoint`.
#[derive(Deserialize, Debug)]
pub struct CreateEndpoint {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// Docker's endpoint id.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Addresses and MAC.
    #[serde(rename = "Interface", default)]
    pub interface: Option<Interface>,
    /// Port maps and such (not used by this driver).
    #[serde(rename = "Options", default)]
    pub options: Option<serde_json::Value>,
}

/// `CreateEndpoint`'s answer: the addresses the driver chose when Docker gave none.
#[derive(Serialize, Default)]
pub struct CreateEndpointResponse {
    /// The interface, when the driver filled it in.
    #[serde(rename = "Interface", skip_serializing_if = "Option::is_none")]
    pub interface: Option<Interface>,
}

/// Calls that name an endpoint (`DeleteEndpoint`, `EndpointOperInfo`, `Leave`,
/// `RevokeExternalConnectivity`, `ProgramExternalConnectivity`).
#[derive(Deserialize, Debug)]
pub struct EndpointRef {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// Options (Program/Revoke, Join).
    #[serde(rename = "Options", default)]
    pub options: Option<serde_json::Value>,
}

/// `NetworkDriver.Join`.
#[derive(Deserialize, Debug)]
pub struct Join {
    /// The network.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// The endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// The sandbox's namespace path, in dockerd's mount namespace (not opened: Docker moves
    /// the link itself).
    #[serde(rename = "SandboxKey")]
    pub sandbox_key: String,
    /// Options.
    #[serde(rename = "Options", default)]
    pub options: Option<serde_json::Value>,
}

/// The link Docker moves into the sandbox, and the name it gets there.
#[derive(Serialize)]
pub struct InterfaceName {
    /// The link's name in dockerd's namespace.
    #[serde(rename = "SrcName")]
    pub src_name: String,
    /// The name's prefix inside (`eth`: Docker numbers it).
    #[serde(rename = "DstPrefix")]
    pub dst_prefix: &'static str,
}

/// `Join`'s answer.
#[derive(Serialize)]
pub struct JoinResponse {
    /// The link to move.
    #[serde(rename = "InterfaceName")]
    pub interface_name: InterfaceName,
    /// IPv4 gateway (none on an internal network).
    #[serde(rename = "Gateway", skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    /// IPv6 gateway.
    #[serde(rename = "GatewayIPv6", skip_serializing_if = "String::is_empty")]
    pub gateway_ipv6: String,
    /// None.
    #[serde(rename = "StaticRoutes")]
    pub static_routes: Vec<serde_json::Value>,
    /// Docker's gateway service (a second, bridge network for outside access) stays on for
    /// internal networks only as Docker decides: not disabled.
    #[serde(rename = "DisableGatewayService")]
    pub disable_gateway_service: bool,
}

/// `EndpointOperInfo`'s answer.
#[derive(Serialize)]
pub struct OperInfo {
    /// What `docker network inspect` shows.
    #[serde(rename = "Value")]
    pub value: BTreeMap<String, String>,
}

/// A network driver's error answer (dockerd reads only `Err` there).
#[derive(Serialize)]
pub struct NetworkError {
    /// The message.
    #[serde(rename = "Err")]
    pub err: String,
}

/// An IPAM driver's error answer (dockerd reads only `Error` there).
#[derive(Serialize)]
pub struct IpamError {
    /// The message.
    #[serde(rename = "Error")]
    pub error: String,
}

/// An empty answer (`{}`).
#[derive(Serialize)]
pub struct Empty {}
