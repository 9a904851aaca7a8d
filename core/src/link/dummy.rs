//! dummy links: a parent that goes nowhere (Docker's internal macvlan/ipvlan networks).

use netlink_packet_route::link::{InfoData, InfoKind};

use super::create::sealed::Spec;
use super::LinkBuilder;
use crate::error::Result;
use crate::handle::Handle;
use crate::netns::Netns;

/// A dummy link.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> underlay::Result<()> {
/// # let Some((_sandbox, h)) = underlay::doc_support::sandbox().await? else { return Ok(()) };
/// use underlay::{Dummy, ErrorKind};
/// match Dummy::create(&h, "dm-internal").up().execute().await {
///     Ok(link) => assert_eq!(link.kind.name(), "dummy"),
///     Err(e) => assert_eq!(e.kind(), ErrorKind::KernelUnsupported), // no dummy module here
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Dummy;

impl Dummy {
    /// A builder for dummy `name`.
    pub fn create(handle: &Handle, name: &str) -> LinkBuilder<Dummy> {
        LinkBuilder::new(handle, Some(name.to_string()), Dummy)
    }
}

impl Spec for Dummy {
    fn kind_name(&self) -> &'static str {
        "dummy"
    }
    fn info(
        &self,
        _parent: Option<u32>,
        _target: Option<&Netns>,
    ) -> Result<(InfoKind, Option<InfoData>)> {
        Ok((InfoKind::Dummy, None))
    }
}
