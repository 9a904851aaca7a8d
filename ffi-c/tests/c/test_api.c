/*
 * C tests of the underlay C ABI: every function with bad input (NULL, invalid names,
 * out-of-range values, invalid UTF-8), result codes and last-error messages, outputs written
 * only on success, _free(NULL), the IPAM in memory, many threads at once, and kernel cases
 * inside throwaway namespaces this test creates (as root; skipped loudly otherwise).
 * Built and run by `cargo xtask c-test` under ASan/UBSan.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#include "check.h"

static const char BAD_UTF8[] = {(char)0xff, (char)0xfe, 'x', 0};

static void test_basics(void) {
  TRUE(strcmp(underlay_version(), UNDERLAY_VERSION) == 0);
  TRUE(strcmp(underlay_last_error_message(), "") == 0);
  TRUE(underlay_last_error_code() == UNDERLAY_RESULT_OK);
  TRUE(strcmp(underlay_result_name(UNDERLAY_RESULT_OK), "UNDERLAY_RESULT_OK") == 0);
  TRUE(strcmp(underlay_result_name(UNDERLAY_RESULT_KERNEL_UNSUPPORTED),
              "UNDERLAY_RESULT_KERNEL_UNSUPPORTED") == 0);
  TRUE(strcmp(underlay_result_name(UNDERLAY_RESULT_MULTIPLE), "UNDERLAY_RESULT_MULTIPLE") == 0);
  TRUE(strcmp(underlay_result_name(UNDERLAY_RESULT_NULL_PARAMETER),
              "UNDERLAY_RESULT_NULL_PARAMETER") == 0);
  TRUE(strcmp(underlay_result_name(9999), "UNDERLAY_RESULT_UNKNOWN") == 0);
  TRUE(UNDERLAY_RESULT_INVALID_ARGUMENT == 1 && UNDERLAY_RESULT_MULTIPLE == 15);
  TRUE(UNDERLAY_RESULT_NULL_PARAMETER == 100 && UNDERLAY_RESULT_INVALID_UTF8 == 101 &&
       UNDERLAY_RESULT_PANIC == 102);
}

/* Every free function accepts NULL. */
static void test_free_null(void) {
  underlay_string_free(NULL);
  underlay_string_list_free(NULL);
  underlay_netns_free(NULL);
  underlay_handle_free(NULL);
  underlay_link_free(NULL);
  underlay_link_list_free(NULL);
  underlay_link_builder_free(NULL);
  underlay_attach_free(NULL);
  underlay_address_list_free(NULL);
  underlay_route_free(NULL);
  underlay_route_list_free(NULL);
  underlay_ipam_store_free(NULL);
  underlay_ipam_network_free(NULL);
  underlay_ipam_free(NULL);
  underlay_lease_free(NULL);
  underlay_lease_list_free(NULL);
  underlay_networks_free(NULL);
  underlay_network_spec_free(NULL);
  underlay_network_free(NULL);
  underlay_network_list_free(NULL);
  underlay_endpoint_spec_free(NULL);
  underlay_endpoint_free(NULL);
  underlay_endpoint_list_free(NULL);
  underlay_reconcile_report_free(NULL);
  underlay_conflict_watch_free(NULL);
  underlay_endpoint_conflict_free(NULL);
  underlay_dhcp_lease_free(NULL);
  underlay_dhcp_renewal_list_free(NULL);
  checks++;
}

/* Getters and list accessors on NULL give NULL / 0 / false. */
static void test_getters_null(void) {
  TRUE(underlay_netns_name(NULL) == NULL && underlay_netns_label(NULL) == NULL);
  TRUE(underlay_link_name(NULL) == NULL && underlay_link_index(NULL) == 0);
  TRUE(underlay_link_kind(NULL) == NULL && underlay_link_mac(NULL) == NULL);
  TRUE(underlay_link_mtu(NULL) == 0 && !underlay_link_is_up(NULL));
  TRUE(!underlay_link_is_running(NULL) && !underlay_link_is_promisc(NULL));
  TRUE(underlay_link_parent_index(NULL) == 0 && underlay_link_master_index(NULL) == 0);
  TRUE(underlay_link_alias(NULL) == NULL && underlay_link_group(NULL) == 0);
  TRUE(underlay_link_netns(NULL) == NULL && underlay_link_vlan_id(NULL) == 0);
  TRUE(underlay_link_vxlan_vni(NULL) == 0 && underlay_link_mode(NULL) == NULL);
  TRUE(underlay_link_list_count(NULL) == 0 && underlay_link_list_get(NULL, 0) == NULL);
  TRUE(underlay_string_list_count(NULL) == 0 && underlay_string_list_get(NULL, 0) == NULL);
  TRUE(underlay_address_list_count(NULL) == 0 && underlay_address_list_get(NULL, 0) == NULL);
  TRUE(underlay_address_string(NULL) == NULL && underlay_address_scope(NULL) == NULL);
  TRUE(underlay_address_link_index(NULL) == 0);
  TRUE(underlay_route_list_count(NULL) == 0 && underlay_route_list_get(NULL, 0) == NULL);
  TRUE(underlay_route_string(NULL) == NULL);
  TRUE(underlay_link_vxlan_ttl(NULL) == 0 && !underlay_link_vxlan_ttl_inherit(NULL));
  TRUE(underlay_link_parent_netns_id(NULL) == -1);
  NUL(underlay_link_builder_vxlan_ttl_inherit(NULL), "builder");
  TRUE(underlay_link_source_mac_count(NULL) == 0 && underlay_link_source_mac(NULL, 0) == NULL &&
       !underlay_link_nopromisc(NULL));
  TRUE(!underlay_route_onlink(NULL) && underlay_route_nexthop_count(NULL) == 0 &&
       underlay_route_nexthop_gateway(NULL, 0) == NULL &&
       underlay_route_nexthop_dev_index(NULL, 0) == 0 && underlay_route_nexthop_weight(NULL, 0) == 0 &&
       !underlay_route_nexthop_onlink(NULL, 0));
  TRUE(!underlay_address_nodad(NULL) && !underlay_address_noprefixroute(NULL) &&
       !underlay_address_secondary(NULL) && !underlay_address_deprecated(NULL) &&
       !underlay_address_dynamic(NULL) && !underlay_address_tentative(NULL));
  TRUE(underlay_address_peer(NULL) == NULL && underlay_address_broadcast(NULL) == NULL &&
       underlay_address_label(NULL) == NULL);
  TRUE(underlay_lease_list_count(NULL) == 0 && underlay_lease_list_get(NULL, 0) == NULL);
  TRUE(underlay_lease_container_id(NULL) == NULL && underlay_lease_ifname(NULL) == NULL);
  TRUE(underlay_lease_address_count(NULL) == 0 && underlay_lease_address(NULL, 0) == NULL);
  TRUE(underlay_lease_gateway(NULL, 0) == NULL);
  TRUE(underlay_network_list_count(NULL) == 0 && underlay_network_list_get(NULL, 0) == NULL);
  TRUE(underlay_network_name(NULL) == NULL && underlay_network_driver(NULL) == NULL);
  TRUE(underlay_network_parent(NULL) == NULL && !underlay_network_parent_in_endpoint_namespace(NULL));
  TRUE(underlay_endpoint_list_count(NULL) == 0 && underlay_endpoint_list_get(NULL, 0) == NULL);
  TRUE(underlay_endpoint_network(NULL) == NULL && underlay_endpoint_container_id(NULL) == NULL);
  TRUE(underlay_endpoint_ifname(NULL) == NULL && underlay_endpoint_mac(NULL) == NULL);
  TRUE(underlay_endpoint_index(NULL) == 0 && underlay_endpoint_address_count(NULL) == 0);
  TRUE(underlay_endpoint_address(NULL, 0) == NULL && underlay_endpoint_route_count(NULL) == 0);
  TRUE(underlay_endpoint_route(NULL, 0) == NULL && underlay_endpoint_handoff(NULL) == NULL);
  TRUE(underlay_endpoint_dhcp(NULL) == NULL && underlay_network_dhcp_subnet(NULL) == NULL);
  TRUE(underlay_dhcp_lease_address(NULL) == NULL && underlay_dhcp_lease_server(NULL) == NULL &&
       underlay_dhcp_lease_server_mac(NULL) == NULL && underlay_dhcp_lease_router(NULL) == NULL);
  TRUE(underlay_dhcp_lease_time_s(NULL) == 0 && underlay_dhcp_lease_t1_s(NULL) == 0 &&
       underlay_dhcp_lease_t2_s(NULL) == 0 && underlay_dhcp_lease_obtained_ms(NULL) == 0);
  TRUE(!underlay_dhcp_lease_is_infinite(NULL) && underlay_dhcp_lease_expires_ms(NULL) == 0 &&
       underlay_dhcp_lease_renew_at_ms(NULL) == 0 && underlay_dhcp_lease_rebind_at_ms(NULL) == 0);
  TRUE(underlay_dhcp_renewal_list_count(NULL) == 0 && underlay_dhcp_renewal_list_get(NULL, 0) == NULL);
  TRUE(underlay_dhcp_renewal_container_id(NULL) == NULL && underlay_dhcp_renewal_ifname(NULL) == NULL &&
       underlay_dhcp_renewal_lease(NULL) == NULL && underlay_dhcp_renewal_error(NULL) == NULL);
  TRUE(underlay_dhcp_renewal_result(NULL) == UNDERLAY_RESULT_NULL_PARAMETER);
  TRUE(!underlay_reconcile_report_is_clean(NULL));
  TRUE(underlay_reconcile_report_recreated_parents(NULL) == NULL);
  TRUE(underlay_reconcile_report_recreated_shims(NULL) == NULL);
  TRUE(underlay_reconcile_report_gone_endpoints(NULL) == NULL);
  TRUE(underlay_reconcile_report_removed_links(NULL) == NULL);
}

/* Every fallible function with a NULL where a pointer is required. */
static void test_null_parameters(void) {
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_link *l = NULL;
  underlay_link_builder *b = NULL;
  underlay_attach *a = NULL;
  underlay_route *r = NULL;
  underlay_ipam_store *st = NULL;
  underlay_ipam_network *in = NULL;
  underlay_ipam *ip = NULL;
  underlay_lease *le = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  char *str = NULL;
  bool flag = false;

  NUL(underlay_netns_create(NULL, &ns), "name");
  NUL(underlay_netns_create("x", NULL), "netns_out");
  NUL(underlay_netns_create_anonymous(NULL), "netns_out");
  NUL(underlay_netns_open(NULL, &ns), "name");
  NUL(underlay_netns_open("x", NULL), "netns_out");
  NUL(underlay_netns_open_path(NULL, &ns), "path");
  NUL(underlay_netns_open_pid(1, NULL), "netns_out");
  NUL(underlay_netns_open_fd(0, NULL), "netns_out");
  NUL(underlay_netns_current(NULL), "netns_out");
  NUL(underlay_netns_delete(NULL), "name");
  NUL(underlay_netns_list(NULL), "list_out");
  NUL(underlay_netns_set_forwarding(NULL, true, false), "netns");
  NUL(underlay_netns_sysctl_set(NULL, "k", "v"), "netns");
  NUL(underlay_netns_sysctl_get(NULL, "k", &str), "netns");
  NUL(underlay_netns_ping(NULL, "127.0.0.1", 10, &flag, NULL), "netns");
  NUL(underlay_handle_new(NULL), "handle_out");
  NUL(underlay_handle_for_netns(NULL, &h), "netns");
  NUL(underlay_handle_create_netns(NULL, &ns, &h), "name");
  NUL(underlay_handle_create_netns("x", NULL, &h), "netns_out");
  NUL(underlay_handle_create_netns("x", &ns, NULL), "handle_out");
  NUL(underlay_handle_link_get(NULL, "lo", &l), "handle");
  NUL(underlay_handle_link_get_by_index(NULL, 1, &l), "handle");
  NUL(underlay_handle_link_list(NULL, NULL), "handle");
  NUL(underlay_handle_link_delete(NULL, "x"), "handle");
  NUL(underlay_handle_link_set_up(NULL, "x", true), "handle");
  NUL(underlay_handle_link_set_promisc(NULL, "x", true), "handle");
  NUL(underlay_handle_link_set_mtu(NULL, "x", 1500), "handle");
  NUL(underlay_handle_link_set_mac(NULL, "x", "02:00:00:00:00:01"), "handle");
  NUL(underlay_handle_link_set_name(NULL, "x", "y"), "handle");
  NUL(underlay_handle_link_set_master(NULL, "x", NULL), "handle");
  NUL(underlay_handle_link_set_netns(NULL, "x", NULL), "handle");
  NUL(underlay_link_builder_vlan(NULL, "p", 10, &b), "handle");
  NUL(underlay_link_builder_macvlan(NULL, "n", "p", "bridge", &b), "handle");
  NUL(underlay_link_builder_macvtap(NULL, "n", "p", "bridge", &b), "handle");
  NUL(underlay_link_builder_ipvlan(NULL, "n", "p", "l2", "bridge", &b), "handle");
  NUL(underlay_link_builder_vxlan(NULL, "n", 1, &b), "handle");
  NUL(underlay_link_builder_veth(NULL, "n", "p", &b), "handle");
  NUL(underlay_link_builder_bridge(NULL, "n", &b), "handle");
  NUL(underlay_link_builder_dummy(NULL, "n", &b), "handle");
  NUL(underlay_link_builder_set_name(NULL, "n"), "builder");
  NUL(underlay_link_builder_set_mtu(NULL, 1400), "builder");
  NUL(underlay_link_builder_set_mac(NULL, "02:00:00:00:00:01"), "builder");
  NUL(underlay_link_builder_set_up(NULL), "builder");
  NUL(underlay_link_builder_set_group(NULL, 1), "builder");
  NUL(underlay_link_builder_set_alias(NULL, "a"), "builder");
  NUL(underlay_link_builder_set_master(NULL, "br0"), "builder");
  NUL(underlay_link_builder_set_netns(NULL, NULL), "netns");
  NUL(underlay_link_builder_set_target(NULL, NULL), "target");
  NUL(underlay_link_builder_macvlan_nopromisc(NULL), "builder");
  NUL(underlay_link_builder_veth_peer_netns(NULL, NULL), "netns");
  NUL(underlay_link_builder_veth_peer_up(NULL), "builder");
  NUL(underlay_link_builder_bridge_vlan_filtering(NULL, true), "builder");
  NUL(underlay_link_builder_vxlan_local(NULL, "10.0.0.1"), "builder");
  NUL(underlay_link_builder_vxlan_remote(NULL, "10.0.0.2"), "builder");
  NUL(underlay_link_builder_vxlan_port(NULL, 4789), "builder");
  NUL(underlay_link_builder_vxlan_device(NULL, "eth0"), "builder");
  NUL(underlay_link_builder_vxlan_learning(NULL, true), "builder");
  NUL(underlay_link_builder_vxlan_ttl(NULL, 64), "builder");
  NUL(underlay_link_builder_execute(NULL, &l), "builder");
  NUL(underlay_attach_new(NULL, "x", NULL, &a), "handle");
  NUL(underlay_attach_set_name(NULL, "eth0"), "attach");
  NUL(underlay_attach_set_mtu(NULL, 1400), "attach");
  NUL(underlay_attach_set_mac(NULL, "02:00:00:00:00:01"), "attach");
  NUL(underlay_attach_add_address(NULL, "10.0.0.1/24"), "attach");
  NUL(underlay_attach_set_gateway(NULL, "10.0.0.254"), "attach");
  NUL(underlay_attach_add_route(NULL, NULL), "route");
  NUL(underlay_attach_set_nodad(NULL), "attach");
  NUL(underlay_attach_set_target(NULL, NULL), "target");
  NUL(underlay_attach_execute(NULL, &l), "attach");
  NUL(underlay_handle_address_add(NULL, "x", "10.0.0.1/24"), "handle");
  NUL(underlay_handle_address_replace(NULL, "x", "10.0.0.1/24"), "handle");
  NUL(underlay_handle_address_delete(NULL, "x", "10.0.0.1/24"), "handle");
  NUL(underlay_handle_address_list(NULL, NULL, NULL), "handle");
  NUL(underlay_route_new(NULL, &r), "destination");
  NUL(underlay_route_new("10.0.0.0/8", NULL), "route_out");
  NUL(underlay_route_default_via(NULL, &r), "gateway");
  NUL(underlay_route_set_via(NULL, "10.0.0.1"), "route");
  NUL(underlay_route_set_dev(NULL, "eth0"), "route");
  NUL(underlay_route_set_source(NULL, "10.0.0.1"), "route");
  NUL(underlay_route_set_metric(NULL, 1), "route");
  NUL(underlay_route_set_table(NULL, 1), "route");
  NUL(underlay_handle_route_add(NULL, NULL), "handle");
  NUL(underlay_handle_route_replace(NULL, NULL), "handle");
  NUL(underlay_handle_route_delete(NULL, NULL), "handle");
  NUL(underlay_handle_route_list(NULL, 0, NULL), "handle");
  NUL(underlay_ipam_store_open_local(NULL, &st), "dir");
  NUL(underlay_ipam_store_open_hostlocal(NULL, &st), "dir");
  NUL(underlay_ipam_store_new_memory(NULL), "store_out");
  NUL(underlay_ipam_network_new(NULL, &in), "name");
  NUL(underlay_ipam_network_add_pool(NULL, "10.0.0.0/24"), "network");
  NUL(underlay_ipam_open(NULL, "n", &ip), "store");
  NUL(underlay_ipam_create(NULL, NULL, &ip), "store");
  NUL(underlay_ipam_open_or_create(NULL, NULL, &ip), "store");
  NUL(underlay_ipam_delete(NULL, "n"), "store");
  NUL(underlay_ipam_allocate(NULL, "c", "eth0", NULL, &le), "ipam");
  NUL(underlay_ipam_release(NULL, "c", "eth0", &flag), "ipam");
  NUL(underlay_ipam_lookup(NULL, "c", "eth0", &le), "ipam");
  NUL(underlay_ipam_list(NULL, NULL), "ipam");
  NUL(underlay_ipam_gc(NULL, NULL, NULL, 0, NULL), "ipam");
  NUL(underlay_route_set_onlink(NULL), "route");
  NUL(underlay_ipam_release_stale(NULL, NULL), "ipam");
  NUL(underlay_networks_open(NULL, "/tmp/x", &nets), "host");
  NUL(underlay_networks_open_with_store(NULL, "/tmp/x", NULL, &nets), "host");
  NUL(underlay_network_spec_macvlan(NULL, "p", "bridge", &sp), "name");
  NUL(underlay_network_spec_ipvlan("n", NULL, "l2", "bridge", &sp), "parent");
  NUL(underlay_network_spec_from_docker("n", NULL, NULL, NULL, 0, &sp), "driver");
  NUL(underlay_network_spec_from_docker("n", "macvlan", NULL, NULL, 1, &sp), "keys");
  NUL(underlay_network_spec_add_pool(NULL, "10.0.0.0/24"), "spec");
  NUL(underlay_network_spec_set_mtu(NULL, 1400), "spec");
  NUL(underlay_network_spec_set_bring_parent_up(NULL), "spec");
  NUL(underlay_network_spec_set_conflict_detection(NULL, 1, 0, 150), "spec");
  NUL(underlay_network_spec_set_parent_in_endpoint_namespace(NULL), "spec");
  NUL(underlay_network_spec_set_dhcp(NULL, 4, 1000, NULL), "spec");
  NUL(underlay_endpoint_spec_set_hostname(NULL, "h"), "spec");
  {
    uint32_t t, f, w;
    uint64_t t64;
    underlay_dhcp_lease *dl = NULL;
    underlay_dhcp_renewal_list *dr = NULL;
    NUL(underlay_network_dhcp(NULL, &t, &f, &w), "network");
    NUL(underlay_network_renew_dhcp(NULL, "c", "eth0", &dl), "network");
    NUL(underlay_network_renew_due_dhcp(NULL, &dr), "network");
    NUL(underlay_networks_renew_due_dhcp(NULL, &dr), "networks");
    NUL(underlay_networks_next_dhcp_renewal_ms(NULL, &t64), "networks");
    TRUE(underlay_dhcp_lease_dns_server_count(NULL) == 0 && underlay_dhcp_lease_dns_server(NULL, 0) == NULL &&
         underlay_dhcp_lease_domain(NULL) == NULL && underlay_dhcp_renewal_network(NULL) == NULL);
  }
  {
    uint32_t p, i, w;
    bool made;
    underlay_conflict_watch *cw = NULL;
    underlay_endpoint_conflict *cc = NULL;
    underlay_lease_list *ql = NULL;
    NUL(underlay_network_conflict_detection(NULL, &p, &i, &w), "network");
    NUL(underlay_network_watch_conflicts(NULL, &cw), "network");
    NUL(underlay_conflict_watch_next(NULL, 10, &cc), "watch");
    NUL(underlay_ipam_quarantine(NULL, "c", "eth0", "10.0.0.1", NULL, &made), "ipam");
    NUL(underlay_ipam_quarantined(NULL, &ql), "ipam");
    TRUE(underlay_endpoint_conflict_ip(NULL) == NULL && underlay_endpoint_conflict_mac(NULL) == NULL);
    TRUE(underlay_endpoint_conflict_container_id(NULL) == NULL &&
         underlay_endpoint_conflict_endpoint_mac(NULL) == NULL);
    TRUE(!underlay_lease_is_quarantine(NULL) && underlay_lease_quarantine_mac(NULL) == NULL &&
         underlay_lease_quarantine_since(NULL) == 0);
  }
  NUL(underlay_networks_create(NULL, NULL, &net), "networks");
  NUL(underlay_networks_get(NULL, "n", &net), "networks");
  NUL(underlay_networks_list(NULL, NULL), "networks");
  NUL(underlay_networks_delete(NULL, "n"), "networks");
  NUL(underlay_networks_reconcile(NULL, NULL), "networks");
  NUL(underlay_endpoint_spec_new(NULL, &es), "container_id");
  NUL(underlay_endpoint_spec_set_ifname(NULL, "eth0"), "spec");
  NUL(underlay_endpoint_spec_add_ip(NULL, "10.0.0.1"), "spec");
  NUL(underlay_endpoint_spec_set_mac(NULL, NULL), "spec");
  NUL(underlay_endpoint_spec_set_target(NULL, NULL), "spec");
  NUL(underlay_endpoint_spec_set_keep_ipv6(NULL, true), "spec");
  NUL(underlay_endpoint_spec_set_default_route(NULL, "auto", 0), "spec");
  NUL(underlay_network_connect(NULL, NULL, NULL, &ep), "network");
  NUL(underlay_network_prepare(NULL, NULL, &ep), "network");
  NUL(underlay_network_enable_host_access_at(NULL, NULL, "10.0.0.2", &str), "network");
  NUL(underlay_network_disconnect(NULL, "c", "eth0"), "network");
  NUL(underlay_network_gc(NULL, NULL, NULL, 0, NULL), "network");
  NUL(underlay_networks_delete_if_unused(NULL, "n", NULL), "networks");
  NUL(underlay_network_endpoint(NULL, "c", "eth0", &ep), "network");
  NUL(underlay_network_endpoints(NULL, NULL), "network");
  NUL(underlay_network_enable_host_access(NULL, NULL, false, NULL, &str), "network");
  NUL(underlay_network_disable_host_access(NULL), "network");
  /* Nothing was written. */
  TRUE(ns == NULL && h == NULL && l == NULL && b == NULL && a == NULL && r == NULL);
  TRUE(st == NULL && in == NULL && ip == NULL && le == NULL && nets == NULL && sp == NULL);
  TRUE(net == NULL && es == NULL && ep == NULL && str == NULL && !flag);
  TRUE(underlay_last_error_code() == UNDERLAY_RESULT_NULL_PARAMETER);
}

/* Strings: invalid UTF-8, invalid names and values; outputs untouched on failure. */
static void test_bad_values(void) {
  underlay_netns *ns = (underlay_netns *)&checks; /* a sentinel that must stay */
  underlay_route *r = NULL;
  underlay_ipam_network *in = NULL;
  underlay_network_spec *sp = NULL;
  underlay_endpoint_spec *es = NULL;

  EXPECT(underlay_netns_open(BAD_UTF8, &ns), UNDERLAY_RESULT_INVALID_UTF8, "`name`");
  EXPECT(underlay_netns_create("bad/name", &ns), UNDERLAY_RESULT_INVALID_ARGUMENT, "bad/name");
  EXPECT(underlay_netns_open("ul-no-such-namespace", &ns), UNDERLAY_RESULT_NOT_FOUND,
         "ul-no-such-namespace");
  EXPECT(underlay_netns_open_fd(-1, &ns), UNDERLAY_RESULT_INVALID_ARGUMENT, "-1");
  TRUE(ns == (underlay_netns *)&checks);
  {
    /* A 1 MiB input gives a short message, the input cut and its length said. */
    size_t n = (size_t)1 << 20;
    char *huge = malloc(n + 1);
    if (huge != NULL) {
      memset(huge, 'x', n);
      huge[n] = 0;
      EXPECT(underlay_netns_create(huge, &ns), UNDERLAY_RESULT_INVALID_ARGUMENT, "1048576 bytes");
      TRUE(strlen(underlay_last_error_message()) < 1024);
      EXPECT(underlay_route_new(huge, &r), UNDERLAY_RESULT_INVALID_ARGUMENT, "1048576 bytes");
      TRUE(strlen(underlay_last_error_message()) < 1024);
      huge[n - 1] = (char)0xff;
      EXPECT(underlay_netns_open(huge, &ns), UNDERLAY_RESULT_INVALID_UTF8, "1048578 bytes");
      TRUE(strlen(underlay_last_error_message()) < 1024);
      free(huge);
    }
  }

  EXPECT(underlay_route_new("not-a-prefix", &r), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "not-a-prefix");
  EXPECT(underlay_route_new(BAD_UTF8, &r), UNDERLAY_RESULT_INVALID_UTF8, "destination");
  EXPECT(underlay_route_default_via("300.1.1.1", &r), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "300.1.1.1");
  TRUE(r == NULL);
  OK(underlay_route_new("172.16.10.0/24", &r));
  OK(underlay_route_set_via(r, "172.16.10.1"));
  OK(underlay_route_set_dev(r, "eth0"));
  OK(underlay_route_set_metric(r, 5));
  OK(underlay_route_set_source(r, "172.16.10.7"));
  EXPECT(underlay_route_set_via(r, "nope"), UNDERLAY_RESULT_INVALID_ARGUMENT, "nope");
  TRUE(strncmp(underlay_route_string(r), "172.16.10.0/24 via 172.16.10.1 dev ", 35) == 0);
  OK(underlay_route_set_table(r, 100));
  TRUE(strcmp(underlay_route_string(r),
              "172.16.10.0/24 via 172.16.10.1 dev eth0 table 100 src 172.16.10.7 metric 5") == 0);
  underlay_route_free(r);

  OK(underlay_ipam_network_new("n1", &in));
  EXPECT(underlay_ipam_network_add_pool(in, "10.0.0.0/33"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         NULL);
  EXPECT(underlay_ipam_network_add_pool(in, BAD_UTF8), UNDERLAY_RESULT_INVALID_UTF8, "pool");
  EXPECT(underlay_ipam_network_add_pool(in, "10.0.0.0/24 gateway=10.0.0.1 gateway=none"),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "both given");
  underlay_ipam_network_free(in);

  EXPECT(underlay_network_spec_macvlan("n", "eth0", "bogus-mode", &sp),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "bogus-mode");
  EXPECT(underlay_network_spec_ipvlan("n", "eth0", "l9", "bridge", &sp),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "l9");
  {
    const char *keys[] = {"parent", "no_such_option"};
    const char *values[] = {"eth0", "1"};
    EXPECT(underlay_network_spec_from_docker("n", "macvlan", keys, values, 2, &sp),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "no_such_option");
    EXPECT(underlay_network_spec_from_docker("n", "bridge", keys, values, 1, &sp),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "bridge");
    OK(underlay_network_spec_from_docker("n", "macvlan", keys, values, 1, &sp));
  }
  EXPECT(underlay_network_spec_add_pool(sp, "garbage"), UNDERLAY_RESULT_INVALID_ARGUMENT, NULL);
  OK(underlay_network_spec_add_pool(sp, "172.16.10.0/24 gateway=172.16.10.1"));
  OK(underlay_network_spec_set_mtu(sp, 1400));
  OK(underlay_network_spec_set_bring_parent_up(sp));
  EXPECT(underlay_network_spec_set_conflict_detection(sp, 0, 0, 150),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "1 to 10");
  EXPECT(underlay_network_spec_set_conflict_detection(sp, 1, 0, 0),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "1 ms");
  EXPECT(underlay_network_spec_set_conflict_detection(sp, 1, 20000, 150),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "10 s");
  OK(underlay_network_spec_set_conflict_detection(sp, 3, 1000, 2000));
  underlay_network_spec_free(sp);

  OK(underlay_endpoint_spec_new("c1", &es));
  EXPECT(underlay_endpoint_spec_add_ip(es, "172.16.10.999"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         NULL);
  EXPECT(underlay_endpoint_spec_set_mac(es, "zz:zz"), UNDERLAY_RESULT_INVALID_ARGUMENT, NULL);
  EXPECT(underlay_endpoint_spec_set_mac(es, "+2:42:ac:10:0a:65"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "+2:42");
  OK(underlay_endpoint_spec_set_mac(es, "02:42:ac:10:0a:65"));
  OK(underlay_endpoint_spec_set_mac(es, NULL));
  OK(underlay_endpoint_spec_set_ifname(es, "eth1"));
  OK(underlay_endpoint_spec_add_ip(es, "172.16.10.101"));
  OK(underlay_endpoint_spec_set_keep_ipv6(es, true));
  NUL(underlay_endpoint_spec_set_default_route(es, NULL, 0), "mode");
  EXPECT(underlay_endpoint_spec_set_default_route(es, BAD_UTF8, 0), UNDERLAY_RESULT_INVALID_UTF8,
         "mode");
  EXPECT(underlay_endpoint_spec_set_default_route(es, "sideways", 0),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "sideways");
  EXPECT(underlay_endpoint_spec_set_default_route(es, "auto", 100),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "100");
  OK(underlay_endpoint_spec_set_default_route(es, "metric", 100));
  OK(underlay_endpoint_spec_set_default_route(es, "none", 0));
  OK(underlay_endpoint_spec_set_default_route(es, "auto", 0));
  underlay_endpoint_spec_free(es);
}

/* The IPAM in memory: no privileges needed. */
static void test_ipam_memory(void) {
  underlay_ipam_store *st = NULL;
  underlay_ipam_network *in = NULL;
  underlay_ipam *ipam = NULL, *again = NULL;
  underlay_lease *le = NULL, *lk = NULL;
  underlay_lease_list *list = NULL;
  bool released = true;

  OK(underlay_ipam_store_new_memory(&st));
  OK(underlay_ipam_network_new("mac_net1", &in));
  OK(underlay_ipam_network_add_pool(
      in, "172.22.16.0/29 gateway=172.22.16.1 reserve=exclude_host=172.22.16.2"));
  OK(underlay_ipam_create(st, in, &ipam));
  EXPECT(underlay_ipam_create(st, in, &again), UNDERLAY_RESULT_ALREADY_EXISTS, "mac_net1");
  OK(underlay_ipam_open_or_create(st, in, &again));
  underlay_ipam_free(again);
  again = NULL;
  OK(underlay_ipam_open(st, "mac_net1", &again));
  underlay_ipam_free(again);
  EXPECT(underlay_ipam_open(st, "no_such_net", &again), UNDERLAY_RESULT_NOT_FOUND,
         "no_such_net");

  OK(underlay_ipam_allocate(ipam, "c1", "eth0", "172.22.16.3", &le));
  TRUE(le != NULL && underlay_lease_address_count(le) == 1);
  if (le != NULL) {
    TRUE(strcmp(underlay_lease_address(le, 0), "172.22.16.3/29") == 0);
    TRUE(strcmp(underlay_lease_gateway(le, 0), "172.22.16.1") == 0);
    TRUE(underlay_lease_address(le, 1) == NULL && underlay_lease_gateway(le, 7) == NULL);
    TRUE(strcmp(underlay_lease_container_id(le), "c1") == 0);
    TRUE(strcmp(underlay_lease_ifname(le), "eth0") == 0);
  }
  underlay_lease_free(le);
  le = NULL;
  EXPECT(underlay_ipam_allocate(ipam, "c2", "eth0", "172.22.16.3", &le),
         UNDERLAY_RESULT_ALREADY_EXISTS, "172.22.16.3");
  EXPECT(underlay_ipam_allocate(ipam, "c2", "eth0", "172.22.16.2", &le),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "172.22.16.2");
  EXPECT(underlay_ipam_allocate(ipam, "c2", "bad/if", NULL, &le),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "bad/if");
  EXPECT(underlay_ipam_allocate(ipam, BAD_UTF8, "eth0", NULL, &le), UNDERLAY_RESULT_INVALID_UTF8,
         "container_id");
  TRUE(le == NULL);
  /* .4 .5 .6 are left (.0 network, .1 gateway, .2 reserved, .7 broadcast). */
  OK(underlay_ipam_allocate(ipam, "c2", "eth0", NULL, &le));
  underlay_lease_free(le);
  OK(underlay_ipam_allocate(ipam, "c3", "eth0", NULL, &le));
  underlay_lease_free(le);
  OK(underlay_ipam_allocate(ipam, "c4", "eth0", NULL, &le));
  underlay_lease_free(le);
  le = NULL;
  EXPECT(underlay_ipam_allocate(ipam, "c5", "eth0", NULL, &le), UNDERLAY_RESULT_POOL_EXHAUSTED,
         NULL);
  OK(underlay_ipam_lookup(ipam, "c1", "eth0", &lk));
  TRUE(lk != NULL);
  underlay_lease_free(lk);
  OK(underlay_ipam_lookup(ipam, "nobody", "eth0", &lk));
  TRUE(lk == NULL);
  OK(underlay_ipam_list(ipam, &list));
  TRUE(underlay_lease_list_count(list) == 4);
  TRUE(underlay_lease_list_get(list, 4) == NULL && underlay_lease_list_get(list, 3) != NULL);
  underlay_lease_list_free(list);
  OK(underlay_ipam_release(ipam, "c4", "eth0", &released));
  TRUE(released);
  OK(underlay_ipam_release(ipam, "c4", "eth0", &released));
  TRUE(!released);
  {
    const char *ids[] = {"c1", "c2"};
    const char *ifs[] = {"eth0", "eth0"};
    OK(underlay_ipam_gc(ipam, ids, ifs, 2, &list));
    TRUE(underlay_lease_list_count(list) == 1);
    TRUE(strcmp(underlay_lease_container_id(underlay_lease_list_get(list, 0)), "c3") == 0);
    underlay_lease_list_free(list);
    EXPECT(underlay_ipam_gc(ipam, ids, NULL, 2, &list), UNDERLAY_RESULT_NULL_PARAMETER,
           "ifnames");
    /* NULL arrays with a huge count: refused before anything is allocated. */
    EXPECT(underlay_ipam_gc(ipam, NULL, NULL, (size_t)1 << 32, &list),
           UNDERLAY_RESULT_NULL_PARAMETER, "container_ids");
    EXPECT(underlay_ipam_gc(ipam, ids, ifs, (size_t)1 << 32, NULL),
           UNDERLAY_RESULT_NULL_PARAMETER, "released_out");
    {
      underlay_network_spec *sp = NULL;
      EXPECT(underlay_network_spec_from_docker("n", "macvlan", NULL, NULL, (size_t)1 << 40, &sp),
             UNDERLAY_RESULT_NULL_PARAMETER, "keys");
      TRUE(sp == NULL);
    }
  }
  OK(underlay_ipam_release_stale(ipam, &list));
  TRUE(underlay_lease_list_count(list) == 0);
  underlay_lease_list_free(list);
  EXPECT(underlay_ipam_delete(st, "mac_net1"), UNDERLAY_RESULT_BUSY, "mac_net1");
  underlay_ipam_free(ipam);
  underlay_ipam_network_free(in);
  underlay_ipam_store_free(st);
}

/* Many threads at once: each sees its own last error. */
static void *thread_main(void *arg) {
  long n = (long)arg;
  char name[32];
  for (int i = 0; i < 20; i++) {
    underlay_netns *ns = NULL;
    snprintf(name, sizeof name, "ul-none-%ld-%d", n, i);
    if (underlay_netns_open(name, &ns) != UNDERLAY_RESULT_NOT_FOUND ||
        strstr(underlay_last_error_message(), name) == NULL)
      return (void *)1;
    underlay_ipam_store *st = NULL;
    underlay_ipam_network *in = NULL;
    underlay_ipam *ipam = NULL;
    underlay_lease *le = NULL;
    if (underlay_ipam_store_new_memory(&st) || underlay_ipam_network_new("t", &in) ||
        underlay_ipam_network_add_pool(in, "10.9.0.0/24") || underlay_ipam_create(st, in, &ipam) ||
        underlay_ipam_allocate(ipam, name, "eth0", NULL, &le))
      return (void *)2;
    underlay_lease_free(le);
    underlay_ipam_free(ipam);
    underlay_ipam_network_free(in);
    underlay_ipam_store_free(st);
  }
  return NULL;
}

static void test_threads(void) {
  pthread_t t[6];
  for (long i = 0; i < 6; i++)
    TRUE(pthread_create(&t[i], NULL, thread_main, (void *)i) == 0);
  for (int i = 0; i < 6; i++) {
    void *ret = NULL;
    pthread_join(t[i], &ret);
    TRUE(ret == NULL);
  }
}

/* ---- kernel cases, inside namespaces this test creates ---- */

static char ns_a[64], ns_b[64];

static underlay_link *make(underlay_link_builder *b) {
  underlay_link *l = NULL;
  underlay_result res = underlay_link_builder_execute(b, &l);
  if (res != UNDERLAY_RESULT_OK)
    FAIL("create link: %s", underlay_last_error_message());
  checks++;
  underlay_link_builder_free(b);
  return l;
}

static void test_kernel(void) {
  underlay_netns *na = NULL, *nb = NULL;
  underlay_handle *ha = NULL, *hb = NULL;
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  underlay_link_list *links = NULL;
  underlay_address_list *addrs = NULL;
  underlay_route_list *routes = NULL;
  underlay_route *r = NULL;
  underlay_attach *at = NULL;
  char *value = NULL;

  snprintf(ns_a, sizeof ns_a, "ulct-a-%d", (int)getpid());
  snprintf(ns_b, sizeof ns_b, "ulct-b-%d", (int)getpid());
  OK(underlay_handle_create_netns(ns_a, &na, &ha));
  OK(underlay_netns_create(ns_b, &nb));
  if (na == NULL || nb == NULL || ha == NULL)
    return;
  EXPECT(underlay_netns_create(ns_b, &nb), UNDERLAY_RESULT_ALREADY_EXISTS, ns_b);
  OK(underlay_handle_for_netns(nb, &hb));
  TRUE(strcmp(underlay_netns_name(na), ns_a) == 0);
  {
    underlay_string_list *names = NULL;
    int found = 0;
    OK(underlay_netns_list(&names));
    for (size_t i = 0; i < underlay_string_list_count(names); i++)
      found += strcmp(underlay_string_list_get(names, i), ns_a) == 0;
    TRUE(found == 1);
    TRUE(underlay_string_list_get(names, underlay_string_list_count(names)) == NULL);
    underlay_string_list_free(names);
  }

  /* veth parent inside the namespace; the peer in the other one. */
  OK(underlay_link_builder_veth(ha, "ens192", "peer0", &b));
  OK(underlay_link_builder_veth_peer_netns(b, nb));
  OK(underlay_link_builder_veth_peer_up(b));
  OK(underlay_link_builder_set_up(b));
  EXPECT(underlay_link_builder_vxlan_port(b, 1), UNDERLAY_RESULT_INVALID_ARGUMENT, "vxlan");
  l = make(b);
  TRUE(l != NULL && strcmp(underlay_link_kind(l), "veth") == 0);
  underlay_link_free(l);

  /* Names: too long, with a slash, invalid UTF-8; a taken name. */
  OK(underlay_link_builder_macvlan(ha, "this-name-is-too-long", "ens192", "bridge", &b));
  l = NULL;
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "this-name-is-too-long");
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "already executed");
  EXPECT(underlay_link_builder_set_up(b), UNDERLAY_RESULT_INVALID_ARGUMENT, "already executed");
  TRUE(l == NULL);
  underlay_link_builder_free(b);
  EXPECT(underlay_link_builder_macvlan(ha, BAD_UTF8, "ens192", "bridge", &b),
         UNDERLAY_RESULT_INVALID_UTF8, "`name`");
  EXPECT(underlay_link_builder_macvlan(ha, "mv0", "ens192", "sideways", &b),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "sideways");
  OK(underlay_link_builder_macvlan(ha, "mv0", "no-such-parent", "bridge", &b));
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_NOT_FOUND, "no-such-parent");
  underlay_link_builder_free(b);

  /* VLAN ids out of range; VLAN support (this host's kernel may lack 8021q). */
  EXPECT(underlay_link_builder_vlan(ha, "ens192", 0, &b), UNDERLAY_RESULT_INVALID_ARGUMENT, "0");
  EXPECT(underlay_link_builder_vlan(ha, "ens192", 4095, &b), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "4095");
  OK(underlay_link_builder_vlan(ha, "ens192", 10, &b));
  {
    underlay_result res = underlay_link_builder_execute(b, &l);
    checks++;
    if (res == UNDERLAY_RESULT_KERNEL_UNSUPPORTED) {
      if (strstr(underlay_last_error_message(), "modprobe 8021q") == NULL)
        FAIL("VLAN unsupported without the modprobe hint: %s", underlay_last_error_message());
      printf("note: kernel has no 8021q: VLAN creation says %s\n", underlay_last_error_message());
    } else if (res == UNDERLAY_RESULT_OK) {
      TRUE(underlay_link_vlan_id(l) == 10 && strcmp(underlay_link_name(l), "ens192.10") == 0);
      underlay_link_free(l);
    } else {
      FAIL("VLAN: %s", underlay_last_error_message());
    }
    l = NULL;
  }
  underlay_link_builder_free(b);

  /* macvlan, macvtap, vxlan, bridge: create, read back, change, list. */
  OK(underlay_link_builder_macvlan(ha, "mv0", "ens192", "bridge", &b));
  OK(underlay_link_builder_set_mac(b, "02:42:ac:16:10:0a"));
  OK(underlay_link_builder_set_mtu(b, 1400));
  OK(underlay_link_builder_set_alias(b, "test alias"));
  EXPECT(underlay_link_builder_set_mac(b, "02:42"), UNDERLAY_RESULT_INVALID_ARGUMENT, NULL);
  l = make(b);
  if (l != NULL) {
    TRUE(strcmp(underlay_link_mac(l), "02:42:ac:16:10:0a") == 0);
    TRUE(underlay_link_mtu(l) == 1400 && strcmp(underlay_link_mode(l), "bridge") == 0);
    TRUE(strcmp(underlay_link_alias(l), "test alias") == 0 && underlay_link_parent_index(l) != 0);
    underlay_link_free(l);
  }
  OK(underlay_link_builder_macvlan(ha, "mv0", "ens192", "bridge", &b));
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_ALREADY_EXISTS, "mv0");
  underlay_link_builder_free(b);
  OK(underlay_link_builder_macvtap(ha, "mvt0", "ens192", "vepa", &b));
  l = make(b);
  TRUE(underlay_link_source_mac_count(l) == 0 && !underlay_link_nopromisc(l));
  TRUE(underlay_link_parent_netns_id(l) == -1);
  underlay_link_free(l);
  {
    /* A source-mode macvtap reads back its source MACs. */
    const char *srcs[] = {"02:00:00:00:aa:01", "02:00:00:00:aa:02"};
    const char *bad[] = {"02:00:00:00:aa:01", "01:00:5e:00:00:01"};
    OK(underlay_link_builder_macvtap(ha, "mvt1", "ens192", "source", &b));
    EXPECT(underlay_link_builder_macvlan_source_macs(b, NULL, (size_t)1 << 40),
           UNDERLAY_RESULT_NULL_PARAMETER, "macs");
    OK(underlay_link_builder_macvlan_source_macs(b, srcs, 2));
    l = make(b);
    TRUE(underlay_link_source_mac_count(l) == 2);
    TRUE(underlay_link_source_mac(l, 2) == NULL);
    if (underlay_link_source_mac_count(l) == 2) {
      TRUE(strcmp(underlay_link_source_mac(l, 0), srcs[0]) == 0 ||
           strcmp(underlay_link_source_mac(l, 1), srcs[0]) == 0);
    }
    underlay_link_free(l);
    OK(underlay_handle_link_delete(ha, "mvt1"));
    OK(underlay_link_builder_macvtap(ha, "mvt2", "ens192", "source", &b));
    OK(underlay_link_builder_macvlan_source_macs(b, bad, 2));
    l = NULL;
    EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_INVALID_ARGUMENT, "multicast");
    TRUE(l == NULL);
    underlay_link_builder_free(b);
  }
  OK(underlay_link_builder_vxlan(ha, "vx0", 4242, &b));
  OK(underlay_link_builder_vxlan_local(b, "10.1.0.1"));
  OK(underlay_link_builder_vxlan_remote(b, "10.1.0.2"));
  OK(underlay_link_builder_vxlan_device(b, "ens192"));
  OK(underlay_link_builder_vxlan_port(b, 4789));
  OK(underlay_link_builder_vxlan_learning(b, false));
  OK(underlay_link_builder_vxlan_ttl(b, 8));
  l = make(b);
  TRUE(underlay_link_vxlan_vni(l) == 4242);
  TRUE(underlay_link_vxlan_ttl(l) == 8 && !underlay_link_vxlan_ttl_inherit(l));
  underlay_link_free(l);
  OK(underlay_link_builder_vxlan(ha, "vx1", 4243, &b));
  OK(underlay_link_builder_vxlan_ttl_inherit(b));
  l = make(b);
  TRUE(underlay_link_vxlan_ttl(l) == 0 && underlay_link_vxlan_ttl_inherit(l));
  underlay_link_free(l);
  OK(underlay_link_builder_vxlan(ha, "vx2", 4244, &b));
  l = make(b);
  TRUE(underlay_link_vxlan_ttl(l) == 0 && !underlay_link_vxlan_ttl_inherit(l));
  underlay_link_free(l);
  OK(underlay_link_builder_bridge(ha, "br0", &b));
  OK(underlay_link_builder_set_up(b));
  underlay_link_free(make(b));
  OK(underlay_link_builder_veth(ha, "vp0", "vp1", &b));
  OK(underlay_link_builder_set_master(b, "br0"));
  OK(underlay_link_builder_set_group(b, 7));
  l = make(b);
  TRUE(underlay_link_master_index(l) != 0 && underlay_link_group(l) == 7);
  underlay_link_free(l);
  OK(underlay_handle_link_set_master(ha, "vp0", NULL));
  OK(underlay_handle_link_set_master(ha, "vp0", "br0"));
  EXPECT(underlay_handle_link_set_master(ha, "vp0", "no-such-br"), UNDERLAY_RESULT_NOT_FOUND,
         "no-such-br");

  OK(underlay_handle_link_set_promisc(ha, "ens192", true));
  OK(underlay_handle_link_set_up(ha, "mv0", true));
  OK(underlay_handle_link_set_mtu(ha, "mv0", 1300));
  OK(underlay_handle_link_set_mac(ha, "mv0", "02:42:ac:16:10:0b"));
  /* A MAC no interface can have is an invalid argument, not a missing link. */
  EXPECT(underlay_handle_link_set_mac(ha, "mv0", "01:00:5e:00:00:01"),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "multicast");
  EXPECT(underlay_handle_link_set_mac(ha, "mv0", "00:00:00:00:00:00"),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "all zeros");
  OK(underlay_link_builder_macvlan(ha, "mv9", "ens192", "bridge", &b));
  OK(underlay_link_builder_set_mac(b, "ff:ff:ff:ff:ff:ff"));
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_INVALID_ARGUMENT, "broadcast");
  underlay_link_builder_free(b);
  EXPECT(underlay_handle_link_set_mac(ha, "mv0", "not-a-mac"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "not-a-mac");
  EXPECT(underlay_handle_link_set_up(ha, "ghost0", true), UNDERLAY_RESULT_NOT_FOUND, "ghost0");
  OK(underlay_handle_link_get(ha, "ens192", &l));
  TRUE(underlay_link_is_promisc(l) && underlay_link_is_up(l));
  underlay_link_free(l);
  l = NULL;
  EXPECT(underlay_handle_link_get(ha, "ghost0", &l), UNDERLAY_RESULT_NOT_FOUND, "ghost0");
  EXPECT(underlay_handle_link_get(ha, "bad name", &l), UNDERLAY_RESULT_INVALID_ARGUMENT, NULL);
  EXPECT(underlay_handle_link_get_by_index(ha, 999999, &l), UNDERLAY_RESULT_NOT_FOUND, NULL);
  TRUE(l == NULL);
  OK(underlay_handle_link_get_by_index(ha, 1, &l));
  TRUE(l != NULL && strcmp(underlay_link_name(l), "lo") == 0);
  underlay_link_free(l);
  OK(underlay_handle_link_list(ha, &links));
  TRUE(underlay_link_list_count(links) >= 7);
  TRUE(underlay_link_list_get(links, 1000) == NULL);
  underlay_link_list_free(links);

  /* Addresses and routes. */
  OK(underlay_handle_address_add(ha, "mv0", "172.16.10.101/24"));
  EXPECT(underlay_handle_address_add(ha, "mv0", "172.16.10.101/24"),
         UNDERLAY_RESULT_ALREADY_EXISTS, NULL);
  OK(underlay_handle_address_replace(ha, "mv0", "172.16.10.101/24"));
  EXPECT(underlay_handle_address_add(ha, "mv0", "172.16.10.101"),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "prefix");
  OK(underlay_handle_address_list(ha, "mv0", &addrs));
  TRUE(underlay_address_list_count(addrs) >= 1);
  if (underlay_address_list_count(addrs) >= 1) {
    const underlay_address *a = underlay_address_list_get(addrs, 0);
    TRUE(strcmp(underlay_address_string(a), "172.16.10.101/24") == 0);
    TRUE(strcmp(underlay_address_scope(a), "global") == 0 && underlay_address_link_index(a) > 0);
    TRUE(underlay_address_broadcast(a) != NULL &&
         strcmp(underlay_address_broadcast(a), "172.16.10.255") == 0);
    TRUE(underlay_address_peer(a) == NULL && underlay_address_label(a) != NULL);
    TRUE(!underlay_address_nodad(a) && !underlay_address_noprefixroute(a) &&
         !underlay_address_secondary(a) && !underlay_address_deprecated(a) &&
         !underlay_address_dynamic(a) && !underlay_address_tentative(a));
  }
  underlay_address_list_free(addrs);
  OK(underlay_handle_address_list(ha, NULL, &addrs));
  underlay_address_list_free(addrs);
  OK(underlay_route_default_via("172.16.10.1", &r));
  OK(underlay_handle_route_add(ha, r));
  EXPECT(underlay_handle_route_add(ha, r), UNDERLAY_RESULT_ALREADY_EXISTS, NULL);
  OK(underlay_handle_route_replace(ha, r));
  OK(underlay_handle_route_list(ha, 0, &routes));
  {
    int found = 0;
    for (size_t i = 0; i < underlay_route_list_count(routes); i++)
      found += strstr(underlay_route_string(underlay_route_list_get(routes, i)),
                      "0.0.0.0/0 via 172.16.10.1 dev if") != NULL;
    TRUE(found == 1);
  }
  underlay_route_list_free(routes);
  {
    /* Table 0 lists every table, iproute2's `table all`; 254 only the main one. */
    underlay_route *t100 = NULL;
    int in_all = 0, in_main = 0;
    OK(underlay_route_new("10.55.0.0/16", &t100));
    OK(underlay_route_set_dev(t100, "mv0"));
    OK(underlay_route_set_table(t100, 100));
    OK(underlay_handle_route_add(ha, t100));
    OK(underlay_handle_route_list(ha, 0, &routes));
    for (size_t i = 0; i < underlay_route_list_count(routes); i++)
      in_all += strstr(underlay_route_string(underlay_route_list_get(routes, i)),
                       "10.55.0.0/16 dev if") != NULL;
    underlay_route_list_free(routes);
    OK(underlay_handle_route_list(ha, 254, &routes));
    for (size_t i = 0; i < underlay_route_list_count(routes); i++)
      in_main += strstr(underlay_route_string(underlay_route_list_get(routes, i)),
                        "10.55.0.0/16") != NULL;
    underlay_route_list_free(routes);
    TRUE(in_all == 1 && in_main == 0);
    OK(underlay_handle_route_delete(ha, t100));
    underlay_route_free(t100);
  }
  {
    /* Multipath and onlink routes: added, read back with every next hop and the flag. */
    underlay_route *mp = NULL, *ol = NULL;
    int seen = 0;
    OK(underlay_route_new("10.66.0.0/16", &mp));
    NUL(underlay_route_add_nexthop(NULL, "172.16.10.1", "mv0", 1, false), "route");
    EXPECT(underlay_route_add_nexthop(mp, NULL, NULL, 1, false), UNDERLAY_RESULT_INVALID_ARGUMENT,
           "gateway or a device");
    EXPECT(underlay_route_add_nexthop(mp, "nope", "mv0", 1, false),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "nope");
    OK(underlay_route_add_nexthop(mp, "172.16.10.1", "mv0", 0, false));
    OK(underlay_route_add_nexthop(mp, "172.16.10.2", "mv0", 3, false));
    TRUE(underlay_route_nexthop_count(mp) == 2 && underlay_route_nexthop_weight(mp, 1) == 3);
    OK(underlay_handle_route_add(ha, mp));
    OK(underlay_route_new("10.67.0.0/16", &ol));
    OK(underlay_route_set_via(ol, "192.0.2.1"));
    OK(underlay_route_set_dev(ol, "mv0"));
    OK(underlay_route_set_onlink(ol));
    TRUE(underlay_route_onlink(ol));
    OK(underlay_handle_route_add(ha, ol));
    OK(underlay_handle_route_list(ha, 254, &routes));
    for (size_t i = 0; i < underlay_route_list_count(routes); i++) {
      const underlay_route *x = underlay_route_list_get(routes, i);
      if (strncmp(underlay_route_string(x), "10.66.0.0/16 ", 13) == 0) {
        seen++;
        TRUE(underlay_route_nexthop_count(x) == 2);
        TRUE(strcmp(underlay_route_nexthop_gateway(x, 0), "172.16.10.1") == 0);
        TRUE(strcmp(underlay_route_nexthop_gateway(x, 1), "172.16.10.2") == 0);
        TRUE(underlay_route_nexthop_weight(x, 0) == 1 && underlay_route_nexthop_weight(x, 1) == 3);
        TRUE(underlay_route_nexthop_dev_index(x, 0) != 0 && !underlay_route_nexthop_onlink(x, 0));
        TRUE(underlay_route_nexthop_gateway(x, 2) == NULL && underlay_route_nexthop_weight(x, 2) == 0);
        TRUE(strstr(underlay_route_string(x), "nexthop via 172.16.10.2 dev if") != NULL);
      }
      if (strncmp(underlay_route_string(x), "10.67.0.0/16 ", 13) == 0) {
        seen++;
        TRUE(underlay_route_onlink(x) && underlay_route_nexthop_count(x) == 0);
        TRUE(strstr(underlay_route_string(x), " onlink") != NULL);
      }
    }
    TRUE(seen == 2);
    underlay_route_list_free(routes);
    OK(underlay_handle_route_delete(ha, mp));
    OK(underlay_handle_route_delete(ha, ol));
    underlay_route_free(mp);
    underlay_route_free(ol);
  }
  OK(underlay_handle_route_delete(ha, r));
  EXPECT(underlay_handle_route_delete(ha, r), UNDERLAY_RESULT_NOT_FOUND, NULL);
  underlay_route_free(r);
  OK(underlay_handle_address_delete(ha, "mv0", "172.16.10.101/24"));

  /* Attach: move mv0 into B as eth0 with an address and a gateway. */
  OK(underlay_attach_new(ha, "mv0", nb, &at));
  OK(underlay_attach_set_name(at, "eth0"));
  OK(underlay_attach_add_address(at, "172.16.10.102/24"));
  OK(underlay_attach_set_gateway(at, "172.16.10.1"));
  OK(underlay_attach_set_target(at, hb));
  OK(underlay_attach_set_mtu(at, 1400));
  OK(underlay_attach_execute(at, &l));
  TRUE(l != NULL && strcmp(underlay_link_name(l), "eth0") == 0);
  /* Its parent stayed in A: the link in B names A's namespace id. */
  TRUE(underlay_link_parent_netns_id(l) >= 0);
  underlay_link_free(l);
  l = NULL;
  EXPECT(underlay_attach_execute(at, &l), UNDERLAY_RESULT_INVALID_ARGUMENT, "already executed");
  underlay_attach_free(at);
  OK(underlay_attach_new(ha, "ghost0", nb, &at));
  EXPECT(underlay_attach_execute(at, &l), UNDERLAY_RESULT_NOT_FOUND, "ghost0");
  underlay_attach_free(at);

  /* Namespace-level calls. */
  OK(underlay_netns_set_forwarding(nb, true, false));
  OK(underlay_netns_sysctl_get(nb, "net.ipv4.ip_forward", &value));
  TRUE(value != NULL && strcmp(value, "1") == 0);
  underlay_string_free(value);
  value = NULL;
  EXPECT(underlay_netns_sysctl_get(nb, "kernel.hostname", &value),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "kernel.hostname");
  OK(underlay_netns_sysctl_set(nb, "net.ipv4.conf.all.arp_ignore", "1"));
  {
    bool replied = false;
    uint64_t rtt = 0;
    OK(underlay_handle_link_set_up(hb, "lo", true));
    OK(underlay_netns_ping(nb, "172.16.10.102", 1000, &replied, &rtt));
    TRUE(replied);
    EXPECT(underlay_netns_ping(nb, "nowhere", 10, &replied, NULL),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "nowhere");
  }
  {
    underlay_netns *cur = NULL, *byfd = NULL;
    OK(underlay_netns_current(&cur));
    OK(underlay_netns_open_pid((uint32_t)getpid(), &cur == NULL ? NULL : &byfd));
    underlay_netns_free(byfd);
    underlay_netns_free(cur);
  }

  OK(underlay_handle_link_delete(ha, "vx0"));
  EXPECT(underlay_handle_link_delete(ha, "vx0"), UNDERLAY_RESULT_NOT_FOUND, "vx0");
  underlay_handle_free(hb);
  underlay_handle_free(ha);
  underlay_netns_free(nb);
  underlay_netns_free(na);
}

/* Networks and endpoints in namespaces (macvlan on a veth parent). */
static void test_networks(void) {
  char host_name[64], ctr_name[64], root[128];
  underlay_netns *hn = NULL, *cn = NULL;
  underlay_handle *hh = NULL, *ch = NULL;
  underlay_link_builder *b = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL;
  underlay_network_list *nl = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  underlay_endpoint_list *el = NULL;
  underlay_reconcile_report *rep = NULL;
  char *shim = NULL;

  snprintf(host_name, sizeof host_name, "ulct-h-%d", (int)getpid());
  snprintf(ctr_name, sizeof ctr_name, "ulct-c-%d", (int)getpid());
  snprintf(root, sizeof root, "/tmp/ulct-root-%d", (int)getpid());
  OK(underlay_handle_create_netns(host_name, &hn, &hh));
  OK(underlay_handle_create_netns(ctr_name, &cn, &ch));
  if (hh == NULL || ch == NULL)
    goto out;
  OK(underlay_link_builder_veth(hh, "ens33", "wire0", &b));
  OK(underlay_link_builder_set_up(b));
  underlay_link_free(make(b));
  OK(underlay_networks_open(hh, root, &nets));
  OK(underlay_network_spec_macvlan("mac_net1", "ens33", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "172.22.16.0/24 gateway=172.22.16.1"));
  OK(underlay_networks_create(nets, sp, &net));
  EXPECT(underlay_networks_create(nets, sp, &net), UNDERLAY_RESULT_ALREADY_EXISTS, "mac_net1");
  underlay_network_spec_free(sp);
  if (net == NULL)
    goto out;
  TRUE(strcmp(underlay_network_name(net), "mac_net1") == 0);
  TRUE(strcmp(underlay_network_driver(net), "macvlan") == 0);
  TRUE(strcmp(underlay_network_parent(net), "ens33") == 0);
  OK(underlay_endpoint_spec_new("c1", &es));
  OK(underlay_endpoint_spec_add_ip(es, "172.22.16.10"));
  OK(underlay_endpoint_spec_set_target(es, ch));
  OK(underlay_network_connect(net, cn, es, &ep));
  EXPECT(underlay_network_connect(net, cn, es, &ep), UNDERLAY_RESULT_ALREADY_EXISTS, NULL);
  underlay_endpoint_spec_free(es);
  TRUE(ep != NULL && strcmp(underlay_endpoint_address(ep, 0), "172.22.16.10/24") == 0);
  TRUE(strcmp(underlay_endpoint_ifname(ep), "eth0") == 0 && underlay_endpoint_index(ep) > 0);
  TRUE(underlay_endpoint_route_count(ep) >= 1 && underlay_endpoint_mac(ep) != NULL);
  TRUE(strcmp(underlay_endpoint_network(ep), "mac_net1") == 0);
  TRUE(strcmp(underlay_endpoint_container_id(ep), "c1") == 0);
  {
    /* An IPv4-only endpoint has IPv6 off (as Docker does). */
    char *v6off = NULL;
    OK(underlay_netns_sysctl_get(cn, "net/ipv6/conf/eth0/disable_ipv6", &v6off));
    TRUE(v6off != NULL && strcmp(v6off, "1") == 0);
    underlay_string_free(v6off);
  }
  TRUE(underlay_endpoint_address(ep, 5) == NULL && underlay_endpoint_route(ep, 0) != NULL);
  underlay_endpoint_free(ep);
  ep = NULL;
  OK(underlay_network_endpoint(net, "c1", "eth0", &ep));
  TRUE(ep != NULL);
  underlay_endpoint_free(ep);
  OK(underlay_network_endpoint(net, "nobody", "eth0", &ep));
  TRUE(ep == NULL);
  {
    /* Keys no endpoint can have are refused, never a panic (issue 12); a container id with
       more bytes than characters is a valid one. */
    char long_if[202], euros[67 * 3 + 1];
    memset(long_if, 'i', 201);
    long_if[201] = 0;
    for (int i = 0; i < 67; i++)
      memcpy(euros + 3 * i, "\xe2\x82\xac", 3);
    euros[67 * 3] = 0;
    EXPECT(underlay_network_endpoint(net, "c", long_if, &ep), UNDERLAY_RESULT_INVALID_ARGUMENT,
           "15");
    EXPECT(underlay_network_endpoint(net, "a\nb", "eth0", &ep),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "control characters");
    EXPECT(underlay_network_disconnect(net, "c", long_if), UNDERLAY_RESULT_INVALID_ARGUMENT,
           "15");
    TRUE(ep == NULL);
    OK(underlay_network_endpoint(net, euros, "eth0", &ep));
    TRUE(ep == NULL);
  }
  OK(underlay_network_endpoints(net, &el));
  TRUE(underlay_endpoint_list_count(el) == 1);
  underlay_endpoint_list_free(el);
  {
    /* A prepared endpoint (Docker's remote driver): its link waits in the host namespace
       under a temporary name; a connected one has none. */
    underlay_endpoint *pe = NULL;
    underlay_link *pl = NULL;
    OK(underlay_network_endpoint(net, "c1", "eth0", &ep));
    TRUE(ep != NULL && underlay_endpoint_handoff(ep) == NULL);
    underlay_endpoint_free(ep);
    ep = NULL;
    NUL(underlay_network_prepare(net, NULL, &pe), "spec");
    OK(underlay_endpoint_spec_new("docker-ep1", &es));
    OK(underlay_endpoint_spec_add_ip(es, "172.22.16.11"));
    OK(underlay_network_prepare(net, es, &pe));
    EXPECT(underlay_network_prepare(net, es, &pe), UNDERLAY_RESULT_ALREADY_EXISTS, "docker-ep1");
    underlay_endpoint_spec_free(es);
    es = NULL;
    TRUE(pe != NULL && underlay_endpoint_handoff(pe) != NULL &&
         strncmp(underlay_endpoint_handoff(pe), "ulh", 3) == 0);
    TRUE(pe != NULL && strcmp(underlay_endpoint_address(pe, 0), "172.22.16.11/24") == 0);
    TRUE(pe != NULL && underlay_endpoint_sandbox(pe) == NULL);
    NUL(underlay_network_set_sandbox(net, "docker-ep1", "eth0", NULL, NULL), "path");
    EXPECT(underlay_network_set_sandbox(net, "docker-ep1", "eth0", "rel/path", NULL),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "absolute");
    EXPECT(underlay_network_set_sandbox(net, "nobody", "eth0", "/run/docker/netns/x", NULL),
           UNDERLAY_RESULT_NOT_FOUND, "nobody");
    OK(underlay_network_set_sandbox(net, "docker-ep1", "eth0", "/run/docker/netns/x", &ep));
    TRUE(ep != NULL && strcmp(underlay_endpoint_sandbox(ep), "/run/docker/netns/x") == 0);
    underlay_endpoint_free(ep);
    ep = NULL;
    if (pe != NULL) {
      OK(underlay_handle_link_get(hh, underlay_endpoint_handoff(pe), &pl));
      TRUE(pl != NULL);
      underlay_link_free(pl);
    }
    underlay_endpoint_free(pe);
    OK(underlay_network_disconnect(net, "docker-ep1", "eth0"));
    OK(underlay_network_endpoint(net, "docker-ep1", "eth0", &ep));
    TRUE(ep == NULL);
  }
  EXPECT(underlay_network_enable_host_access_at(net, NULL, "not-an-ip", &shim),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "not-an-ip");
  EXPECT(underlay_network_enable_host_access(net, NULL, false, "sideways", &shim),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "sideways");
  OK(underlay_network_enable_host_access(net, "macvlan0-host", false, NULL, &shim));
  TRUE(shim != NULL && strcmp(shim, "macvlan0-host") == 0);
  underlay_string_free(shim);
  OK(underlay_networks_list(nets, &nl));
  TRUE(underlay_network_list_count(nl) == 1);
  underlay_network_list_free(nl);
  OK(underlay_networks_reconcile(nets, &rep));
  TRUE(underlay_reconcile_report_is_clean(rep));
  TRUE(underlay_string_list_count(underlay_reconcile_report_gone_endpoints(rep)) == 0);
  TRUE(underlay_reconcile_report_recreated_parents(rep) != NULL);
  TRUE(underlay_reconcile_report_recreated_shims(rep) != NULL);
  TRUE(underlay_reconcile_report_removed_links(rep) != NULL);
  underlay_reconcile_report_free(rep);
  EXPECT(underlay_networks_delete(nets, "mac_net1"), UNDERLAY_RESULT_BUSY, "mac_net1");
  {
    /* An endpoint (c1) is left: the shim stays. */
    bool disabled = true;
    OK(underlay_network_disable_host_access_if_unused(net, &disabled));
    TRUE(!disabled);
    EXPECT(underlay_network_disable_host_access_if_unused(net, NULL),
           UNDERLAY_RESULT_NULL_PARAMETER, "disabled_out");
  }
  OK(underlay_network_disable_host_access(net));
  {
    /* Used (endpoint c1): delete_if_unused changes nothing. */
    bool deleted = true;
    OK(underlay_networks_delete_if_unused(nets, "mac_net1", &deleted));
    TRUE(!deleted);
    EXPECT(underlay_networks_delete_if_unused(nets, "mac_net1", NULL),
           UNDERLAY_RESULT_NULL_PARAMETER, "deleted_out");
  }
  {
    /* GC keeps the valid endpoint, then (none valid) releases it: link, lease, record. */
    const char *ids[] = {"c1"}, *ifs[] = {"eth0"};
    underlay_string_list *gone = NULL;
    char cmd[160];
    OK(underlay_network_gc(net, ids, ifs, 1, &gone));
    TRUE(gone != NULL && underlay_string_list_count(gone) == 0);
    underlay_string_list_free(gone);
    gone = NULL;
    EXPECT(underlay_network_gc(net, ids, NULL, 1, &gone), UNDERLAY_RESULT_NULL_PARAMETER,
           "ifnames");
    OK(underlay_network_gc(net, NULL, NULL, 0, &gone));
    TRUE(gone != NULL && underlay_string_list_count(gone) == 1 &&
         strcmp(underlay_string_list_get(gone, 0), "mac_net1/c1/eth0") == 0);
    underlay_string_list_free(gone);
    OK(underlay_network_endpoint(net, "c1", "eth0", &ep));
    TRUE(ep == NULL);
    /* The oracle: the link is gone from the container. */
    snprintf(cmd, sizeof cmd, "ip -n %s link show eth0 >/dev/null 2>&1", ctr_name);
    TRUE(system(cmd) != 0);
  }
  OK(underlay_network_disconnect(net, "c1", "eth0"));
  underlay_network_free(net);
  net = NULL;
  OK(underlay_networks_get(nets, "mac_net1", &net));
  underlay_network_free(net);
  {
    /* Unused now: deleted. */
    bool deleted = false;
    OK(underlay_networks_delete_if_unused(nets, "mac_net1", &deleted));
    TRUE(deleted);
  }
  EXPECT(underlay_networks_delete(nets, "mac_net1"), UNDERLAY_RESULT_NOT_FOUND, "mac_net1");
  EXPECT(underlay_networks_get(nets, "mac_net1", &net), UNDERLAY_RESULT_NOT_FOUND, "mac_net1");
out:
  underlay_networks_free(nets);
  underlay_handle_free(ch);
  underlay_handle_free(hh);
  underlay_netns_free(cn);
  underlay_netns_free(hn);
  underlay_netns_delete(ctr_name);
  underlay_netns_delete(host_name);
  {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup of %s failed\n", root);
  }
}

/* A network whose parent is in each endpoint's namespace: the "host" has no eth1, the
   container has; the link is made in there on it, and `ip -d` names that parent. */
static void test_parent_in_endpoint(void) {
  char host_name[64], ctr_name[64], root[128], cmd[300];
  underlay_netns *hn = NULL, *cn = NULL;
  underlay_handle *hh = NULL, *ch = NULL;
  underlay_link_builder *b = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;

  snprintf(host_name, sizeof host_name, "ulct-ph-%d", (int)getpid());
  snprintf(ctr_name, sizeof ctr_name, "ulct-pc-%d", (int)getpid());
  snprintf(root, sizeof root, "/tmp/ulct-proot-%d", (int)getpid());
  OK(underlay_handle_create_netns(host_name, &hn, &hh));
  OK(underlay_handle_create_netns(ctr_name, &cn, &ch));
  if (hh == NULL || ch == NULL)
    goto out;
  OK(underlay_link_builder_veth(ch, "eth1", "wire1", &b));
  OK(underlay_link_builder_set_up(b));
  underlay_link_free(make(b));
  OK(underlay_networks_open(hh, root, &nets));
  OK(underlay_network_spec_macvlan("pinet", "eth1", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "172.22.30.0/24 gateway=172.22.30.1"));
  OK(underlay_network_spec_set_parent_in_endpoint_namespace(sp));
  OK(underlay_network_spec_set_conflict_detection(sp, 1, 0, 150));
  EXPECT(underlay_networks_create(nets, sp, &net), UNDERLAY_RESULT_INVALID_ARGUMENT, "pinet");
  underlay_network_spec_free(sp);
  OK(underlay_network_spec_macvlan("pinet", "eth1", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "172.22.30.0/24 gateway=172.22.30.1"));
  OK(underlay_network_spec_set_parent_in_endpoint_namespace(sp));
  OK(underlay_networks_create(nets, sp, &net));
  underlay_network_spec_free(sp);
  if (net == NULL)
    goto out;
  TRUE(underlay_network_parent_in_endpoint_namespace(net));
  OK(underlay_endpoint_spec_new("c1", &es));
  OK(underlay_endpoint_spec_set_target(es, ch));
  OK(underlay_network_connect(net, cn, es, &ep));
  underlay_endpoint_spec_free(es);
  TRUE(ep != NULL && strcmp(underlay_endpoint_address(ep, 0), "172.22.30.2/24") == 0);
  underlay_endpoint_free(ep);
  snprintf(cmd, sizeof cmd,
           "ip -n %s -d -j link show dev eth0 | grep -q '\"link\":\"eth1\"'", ctr_name);
  TRUE(system(cmd) == 0);
  snprintf(cmd, sizeof cmd, "ip -n %s link show dev eth1 >/dev/null 2>&1", host_name);
  TRUE(system(cmd) != 0);
  OK(underlay_network_disconnect(net, "c1", "eth0"));
  OK(underlay_networks_delete(nets, "pinet"));
  underlay_network_free(net);
out:
  underlay_networks_free(nets);
  underlay_handle_free(ch);
  underlay_handle_free(hh);
  underlay_netns_free(cn);
  underlay_netns_free(hn);
  underlay_netns_delete(ctr_name);
  underlay_netns_delete(host_name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "cleanup of %s failed\n", root);
}

/* Conflict detection: the wire's end of the parent's veth holds the pool's first address, so
   connect skips it and the IPAM lists it quarantined with that end's MAC; a quarantine made by
   hand; the watch for later conflicts. */
static void test_conflicts(void) {
  char host_name[64], ctr_name[64], root[128], ipam_dir[160];
  underlay_netns *hn = NULL, *cn = NULL;
  underlay_handle *hh = NULL, *ch = NULL;
  underlay_link_builder *b = NULL;
  underlay_link *wire = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  underlay_ipam_store *st = NULL;
  underlay_ipam *ipam = NULL;
  underlay_lease_list *ql = NULL;
  underlay_conflict_watch *cw = NULL;
  underlay_endpoint_conflict *cc = NULL;
  uint32_t probes = 9, interval = 9, wait = 9;
  bool made = false;

  snprintf(host_name, sizeof host_name, "ulcq-h-%d", (int)getpid());
  snprintf(ctr_name, sizeof ctr_name, "ulcq-c-%d", (int)getpid());
  snprintf(root, sizeof root, "/tmp/ulcq-root-%d", (int)getpid());
  snprintf(ipam_dir, sizeof ipam_dir, "%s/ipam", root);
  OK(underlay_handle_create_netns(host_name, &hn, &hh));
  OK(underlay_handle_create_netns(ctr_name, &cn, &ch));
  if (hh == NULL || ch == NULL)
    goto out;
  OK(underlay_link_builder_veth(hh, "ens35", "wire1", &b));
  OK(underlay_link_builder_set_up(b));
  OK(underlay_link_builder_veth_peer_up(b));
  underlay_link_free(make(b));
  OK(underlay_handle_address_add(hh, "wire1", "172.23.40.2/24"));
  OK(underlay_handle_link_get(hh, "wire1", &wire));
  OK(underlay_networks_open(hh, root, &nets));
  OK(underlay_network_spec_macvlan("cq_net", "ens35", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "172.23.40.0/24 gateway=172.23.40.1"));
  OK(underlay_network_spec_set_conflict_detection(sp, 1, 0, 150));
  OK(underlay_networks_create(nets, sp, &net));
  underlay_network_spec_free(sp);
  if (net == NULL || wire == NULL)
    goto out;
  OK(underlay_network_conflict_detection(net, &probes, &interval, &wait));
  TRUE(probes == 1 && interval == 0 && wait == 150);
  OK(underlay_network_watch_conflicts(net, &cw));
  OK(underlay_endpoint_spec_new("cq1", &es));
  OK(underlay_network_connect(net, cn, es, &ep));
  underlay_endpoint_spec_free(es);
  TRUE(ep != NULL && strcmp(underlay_endpoint_address(ep, 0), "172.23.40.3/24") == 0);
  OK(underlay_ipam_store_open_local(ipam_dir, &st));
  OK(underlay_ipam_open(st, "cq_net", &ipam));
  if (ipam == NULL)
    goto out;
  OK(underlay_ipam_quarantined(ipam, &ql));
  TRUE(underlay_lease_list_count(ql) == 1);
  {
    const underlay_lease *q = underlay_lease_list_get(ql, 0);
    TRUE(q != NULL && underlay_lease_is_quarantine(q));
    TRUE(q != NULL && strcmp(or_empty(underlay_lease_address(q, 0)), "172.23.40.2/24") == 0);
    TRUE(q != NULL && strcmp(or_empty(underlay_lease_quarantine_mac(q)),
                             or_empty(underlay_link_mac(wire))) == 0);
    TRUE(q != NULL && underlay_lease_quarantine_since(q) > 1700000000ULL);
  }
  underlay_lease_list_free(ql);
  ql = NULL;
  /* By hand: an address nobody holds, with no MAC seen; one another owner holds stays its. */
  OK(underlay_ipam_quarantine(ipam, "nobody", "eth0", "172.23.40.200", NULL, &made));
  TRUE(made);
  OK(underlay_ipam_quarantine(ipam, "nobody", "eth0", "172.23.40.3", "02:00:00:00:00:09", &made));
  TRUE(!made);
  EXPECT(underlay_ipam_quarantine(ipam, "nobody", "eth0", "172.23.40.201", "01:00:00:00:00:01", &made),
         UNDERLAY_RESULT_INVALID_ARGUMENT, NULL);
  OK(underlay_ipam_quarantined(ipam, &ql));
  TRUE(underlay_lease_list_count(ql) == 2);
  {
    const underlay_lease *q = underlay_lease_list_get(ql, 1);
    TRUE(q != NULL && underlay_lease_quarantine_mac(q) == NULL);
  }
  underlay_lease_list_free(ql);
  /* Nobody else uses the endpoint's address: the watch reports nothing (the Rust and Python
     tests make the wire's end take it; C has no announce to do so). */
  OK(underlay_conflict_watch_next(cw, 200, &cc));
  TRUE(cc == NULL);
  OK(underlay_network_disconnect(net, "cq1", "eth0"));
out:
  underlay_endpoint_conflict_free(cc);
  underlay_conflict_watch_free(cw);
  underlay_endpoint_free(ep);
  underlay_ipam_free(ipam);
  underlay_ipam_store_free(st);
  underlay_link_free(wire);
  underlay_network_free(net);
  underlay_networks_free(nets);
  underlay_handle_free(ch);
  underlay_handle_free(hh);
  underlay_netns_free(cn);
  underlay_netns_free(hn);
  underlay_netns_delete(ctr_name);
  underlay_netns_delete(host_name);
  {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup of %s failed\n", root);
  }
}

/* A DHCP network against dnsmasq in the wire namespace: the lease read back through the
   endpoint, renewal, the renewer's tick, release on disconnect (dnsmasq's lease file as the
   oracle), and no server: a timeout naming the endpoint, nothing left. */
static void test_dhcp(void) {
  char host_name[64], wire_name[64], ctr_name[64], root[128], cmd[1024], leases[200];
  underlay_netns *hn = NULL, *wn = NULL, *cn = NULL;
  underlay_handle *hh = NULL, *wh = NULL, *ch = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  underlay_dhcp_lease *renewed = NULL;
  underlay_dhcp_renewal_list *due = NULL;
  uint32_t tries = 9, first = 9, total = 9;
  int started = 0;

  if (system("dnsmasq --version >/dev/null 2>&1") != 0) {
    FAIL("dnsmasq is not installed: the DHCP test needs Debian's dnsmasq "
         "(`apt-get install --no-install-recommends dnsmasq-base`; `cargo xtask c-test` installs it)");
    return;
  }
  snprintf(host_name, sizeof host_name, "ulcd-h-%d", (int)getpid());
  snprintf(wire_name, sizeof wire_name, "ulcd-w-%d", (int)getpid());
  snprintf(ctr_name, sizeof ctr_name, "ulcd-c-%d", (int)getpid());
  snprintf(root, sizeof root, "/tmp/ulcd-root-%d", (int)getpid());
  snprintf(leases, sizeof leases, "%s/dnsmasq.leases", root);
  OK(underlay_handle_create_netns(host_name, &hn, &hh));
  OK(underlay_handle_create_netns(wire_name, &wn, &wh));
  OK(underlay_handle_create_netns(ctr_name, &cn, &ch));
  if (hh == NULL || wh == NULL || ch == NULL)
    goto out;
  snprintf(cmd, sizeof cmd,
           "ip -n %s link add ens36 type veth peer name wire0 netns %s && ip -n %s link set ens36 up"
           " && ip -n %s link set wire0 up && ip -n %s addr add 10.81.0.1/24 dev wire0 && mkdir -p %s",
           host_name, wire_name, host_name, wire_name, wire_name, root);
  TRUE(system(cmd) == 0);
  snprintf(cmd, sizeof cmd,
           "ip netns exec %s dnsmasq --port=0 --conf-file=/dev/null --interface=wire0 --bind-interfaces"
           " --dhcp-range=10.81.0.10,10.81.0.50,255.255.255.0,2m --dhcp-authoritative --no-ping"
           " --dhcp-option=option:dns-server,10.81.0.53,10.81.0.54 --dhcp-option=option:domain-name,lan.test"
           " --user=root --group=root --dhcp-leasefile=%s --pid-file=%s/dnsmasq.pid",
           wire_name, leases, root);
  started = system(cmd) == 0; /* daemonizes; stopped by its pid file below */
  TRUE(started);
  OK(underlay_networks_open(hh, root, &nets));
  OK(underlay_network_spec_macvlan("cd_net", "ens36", "bridge", &sp));
  EXPECT(underlay_network_spec_set_dhcp(sp, 2, 200, "fd00::/64"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "IPv6");
  OK(underlay_network_spec_set_dhcp(sp, 2, 200, "10.81.0.0/24"));
  OK(underlay_networks_create(nets, sp, &net));
  underlay_network_spec_free(sp);
  if (net == NULL)
    goto out;
  OK(underlay_network_dhcp(net, &tries, &first, &total));
  TRUE(tries == 2 && first == 200 && total == 600);
  TRUE(strcmp(or_empty(underlay_network_dhcp_subnet(net)), "10.81.0.0/24") == 0);
  TRUE(underlay_network_pool_count(net) == 0);
  OK(underlay_endpoint_spec_new("cd1", &es));
  OK(underlay_endpoint_spec_set_hostname(es, "c-dhcp"));
  OK(underlay_network_connect(net, cn, es, &ep));
  underlay_endpoint_spec_free(es);
  es = NULL;
  if (ep == NULL)
    goto out;
  {
    const underlay_dhcp_lease *l = underlay_endpoint_dhcp(ep);
    char want[200];
    TRUE(l != NULL);
    if (l == NULL)
      goto out;
    TRUE(strncmp(or_empty(underlay_dhcp_lease_address(l)), "10.81.0.", 8) == 0);
    TRUE(strcmp(or_empty(underlay_endpoint_address(ep, 0)), or_empty(underlay_dhcp_lease_address(l))) == 0);
    TRUE(strcmp(or_empty(underlay_dhcp_lease_server(l)), "10.81.0.1") == 0);
    TRUE(strcmp(or_empty(underlay_dhcp_lease_router(l)), "10.81.0.1") == 0);
    TRUE(underlay_dhcp_lease_server_mac(l) != NULL);
    TRUE(underlay_dhcp_lease_dns_server_count(l) == 2);
    TRUE(strcmp(or_empty(underlay_dhcp_lease_dns_server(l, 0)), "10.81.0.53") == 0);
    TRUE(strcmp(or_empty(underlay_dhcp_lease_dns_server(l, 1)), "10.81.0.54") == 0);
    TRUE(underlay_dhcp_lease_dns_server(l, 2) == NULL);
    TRUE(strcmp(or_empty(underlay_dhcp_lease_domain(l)), "lan.test") == 0);
    TRUE(underlay_dhcp_lease_time_s(l) == 120 && underlay_dhcp_lease_t1_s(l) == 60 &&
         underlay_dhcp_lease_t2_s(l) == 105);
    TRUE(!underlay_dhcp_lease_is_infinite(l) && underlay_dhcp_lease_obtained_ms(l) > 1700000000000ULL);
    TRUE(underlay_dhcp_lease_expires_ms(l) == underlay_dhcp_lease_obtained_ms(l) + 120000);
    TRUE(underlay_dhcp_lease_renew_at_ms(l) == underlay_dhcp_lease_obtained_ms(l) + 60000);
    TRUE(underlay_dhcp_lease_rebind_at_ms(l) == underlay_dhcp_lease_obtained_ms(l) + 105000);
    /* The oracle: dnsmasq's lease file names the address and the host name. */
    snprintf(want, sizeof want, "%.*s", (int)(strchr(underlay_dhcp_lease_address(l), '/') -
                                              underlay_dhcp_lease_address(l)),
             underlay_dhcp_lease_address(l));
    snprintf(cmd, sizeof cmd, "grep -q ' %s c-dhcp ' %s", want, leases);
    TRUE(system(cmd) == 0);
    snprintf(cmd, sizeof cmd, "ip -n %s -4 addr show dev eth0 | grep -q 'inet %s/24'", ctr_name, want);
    TRUE(system(cmd) == 0);
  }
  OK(underlay_network_renew_dhcp(net, "cd1", "eth0", &renewed));
  TRUE(renewed != NULL &&
       strcmp(or_empty(underlay_dhcp_lease_address(renewed)), or_empty(underlay_endpoint_address(ep, 0))) == 0);
  OK(underlay_network_renew_due_dhcp(net, &due));
  TRUE(underlay_dhcp_renewal_list_count(due) == 0); /* nothing due before T1 */
  underlay_dhcp_renewal_list_free(due);
  due = NULL;
  /* The same over the whole state directory, and when the next renewal is due: T1. */
  OK(underlay_networks_renew_due_dhcp(nets, &due));
  TRUE(underlay_dhcp_renewal_list_count(due) == 0);
  {
    uint64_t next = 0;
    OK(underlay_networks_next_dhcp_renewal_ms(nets, &next));
    TRUE(renewed != NULL && next == underlay_dhcp_lease_renew_at_ms(renewed));
  }
  EXPECT(underlay_network_renew_dhcp(net, "nobody", "eth0", &renewed), UNDERLAY_RESULT_NOT_FOUND,
         "nobody");
  OK(underlay_network_disconnect(net, "cd1", "eth0"));
  /* Released: dnsmasq empties its lease file (polled: it writes after the message came). */
  snprintf(cmd, sizeof cmd, "for i in $(seq 40); do test ! -s %s && exit 0; sleep 0.05; done; exit 1",
           leases);
  TRUE(system(cmd) == 0);
  /* The server goes away: a clear timeout, nothing left. */
  snprintf(cmd, sizeof cmd, "kill $(cat %s/dnsmasq.pid)", root);
  TRUE(system(cmd) == 0);
  started = 0;
  OK(underlay_endpoint_spec_new("cd2", &es));
  EXPECT(underlay_network_connect(net, cn, es, &ep), UNDERLAY_RESULT_TIMEOUT, "cd2");
  TRUE(lacks("no DHCP server answered") == 0);
  snprintf(cmd, sizeof cmd, "ip -n %s link show eth0 >/dev/null 2>&1", ctr_name);
  TRUE(system(cmd) != 0);
out:
  if (started) {
    snprintf(cmd, sizeof cmd, "kill $(cat %s/dnsmasq.pid)", root);
    if (system(cmd) != 0)
      fprintf(stderr, "stopping dnsmasq failed\n");
  }
  underlay_dhcp_renewal_list_free(due);
  underlay_dhcp_lease_free(renewed);
  underlay_endpoint_spec_free(es);
  underlay_endpoint_free(ep);
  underlay_network_free(net);
  underlay_networks_free(nets);
  underlay_handle_free(ch);
  underlay_handle_free(wh);
  underlay_handle_free(hh);
  underlay_netns_free(cn);
  underlay_netns_free(wn);
  underlay_netns_free(hn);
  underlay_netns_delete(ctr_name);
  underlay_netns_delete(wire_name);
  underlay_netns_delete(host_name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    fprintf(stderr, "cleanup of %s failed\n", root);
}

/* The oracle: how many IPv4 default routes namespace `name` has (`ip -4 route show default`). */
static int default_routes(const char *name) {
  char cmd[160], line[256];
  int n = 0;
  snprintf(cmd, sizeof cmd, "ip -n '%s' -4 route show default", name);
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return -1;
  while (fgets(line, sizeof line, p) != NULL)
    n++;
  if (pclose(p) != 0)
    return -1;
  return n;
}

/* Connects `ctr` to `net` as `ifname` with default route `mode`/`metric`; returns the
   endpoint's route count (-1 on failure). */
static int connect_with_default_route(underlay_network *net, underlay_netns *ctr,
                                      const char *ifname, const char *mode, uint32_t metric,
                                      char *route, size_t route_size) {
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  int n = -1;
  OK(underlay_endpoint_spec_new("c1", &es));
  OK(underlay_endpoint_spec_set_ifname(es, ifname));
  OK(underlay_endpoint_spec_set_default_route(es, mode, metric));
  OK(underlay_network_connect(net, ctr, es, &ep));
  underlay_endpoint_spec_free(es);
  if (ep != NULL) {
    n = (int)underlay_endpoint_route_count(ep);
    if (route != NULL && n > 0)
      snprintf(route, route_size, "%s", underlay_endpoint_route(ep, 0));
  }
  underlay_endpoint_free(ep);
  return n;
}

/* A container on two networks with gateways: the default route modes, and a target handle
   in another namespace refused. */
static void test_several_networks(void) {
  char host_name[64], ctr_name[64], root[128], route[128] = "";
  underlay_netns *hn = NULL, *cn = NULL;
  underlay_handle *hh = NULL, *ch = NULL;
  underlay_link_builder *b = NULL;
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net[2] = {NULL, NULL};
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;

  snprintf(host_name, sizeof host_name, "ulct-h2-%d", (int)getpid());
  snprintf(ctr_name, sizeof ctr_name, "ulct-c2-%d", (int)getpid());
  snprintf(root, sizeof root, "/tmp/ulct-root2-%d", (int)getpid());
  OK(underlay_handle_create_netns(host_name, &hn, &hh));
  OK(underlay_handle_create_netns(ctr_name, &cn, &ch));
  if (hh == NULL || ch == NULL)
    goto out;
  OK(underlay_networks_open(hh, root, &nets));
  for (int i = 0; i < 2; i++) {
    char parent[16], wire[16], name[16], pool[64];
    snprintf(parent, sizeof parent, "ens%d", 33 + i);
    snprintf(wire, sizeof wire, "wire%d", i);
    snprintf(name, sizeof name, "gw%d", i);
    snprintf(pool, sizeof pool, "172.22.%d.0/24 gateway=172.22.%d.1", 30 + i, 30 + i);
    OK(underlay_link_builder_veth(hh, parent, wire, &b));
    OK(underlay_link_builder_set_up(b));
    underlay_link_free(make(b));
    OK(underlay_network_spec_macvlan(name, parent, "bridge", &sp));
    OK(underlay_network_spec_add_pool(sp, pool));
    OK(underlay_networks_create(nets, sp, &net[i]));
    underlay_network_spec_free(sp);
    sp = NULL;
  }
  if (net[0] == NULL || net[1] == NULL)
    goto out;
  /* A handle in the host namespace as the target of the container's connect: refused. */
  OK(underlay_endpoint_spec_new("c1", &es));
  OK(underlay_endpoint_spec_set_target(es, hh));
  EXPECT(underlay_network_connect(net[0], cn, es, &ep), UNDERLAY_RESULT_INVALID_ARGUMENT,
         host_name);
  TRUE(ep == NULL);
  underlay_endpoint_spec_free(es);
  /* Auto: the first network gives the default route, the second none (it used to fail). */
  TRUE(connect_with_default_route(net[0], cn, "eth0", "auto", 0, NULL, 0) == 1);
  TRUE(connect_with_default_route(net[1], cn, "eth1", "auto", 0, NULL, 0) == 0);
  TRUE(default_routes(ctr_name) == 1);
  OK(underlay_network_disconnect(net[1], "c1", "eth1"));
  /* Metric: its own, beside the first. */
  TRUE(connect_with_default_route(net[1], cn, "eth1", "metric", 100, route, sizeof route) == 1);
  TRUE(strstr(route, "via 172.22.31.1") != NULL && strstr(route, "metric 100") != NULL);
  TRUE(default_routes(ctr_name) == 2);
  OK(underlay_network_endpoint(net[1], "c1", "eth1", &ep));
  TRUE(ep != NULL && underlay_endpoint_route_count(ep) == 1 &&
       strstr(underlay_endpoint_route(ep, 0), "metric 100") != NULL);
  underlay_endpoint_free(ep);
  OK(underlay_network_disconnect(net[1], "c1", "eth1"));
  TRUE(default_routes(ctr_name) == 1);
  /* None: never. */
  TRUE(connect_with_default_route(net[1], cn, "eth1", "none", 0, NULL, 0) == 0);
  OK(underlay_network_disconnect(net[1], "c1", "eth1"));
  OK(underlay_network_disconnect(net[0], "c1", "eth0"));
  TRUE(default_routes(ctr_name) == 0);
out:
  underlay_network_free(net[0]);
  underlay_network_free(net[1]);
  underlay_networks_free(nets);
  underlay_handle_free(ch);
  underlay_handle_free(hh);
  underlay_netns_free(cn);
  underlay_netns_free(hn);
  underlay_netns_delete(ctr_name);
  underlay_netns_delete(host_name);
  {
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
      fprintf(stderr, "cleanup of %s failed\n", root);
  }
}

int main(void) {
  test_basics();
  test_free_null();
  test_getters_null();
  test_null_parameters();
  test_bad_values();
  test_ipam_memory();
  test_threads();
  if (geteuid() == 0) {
    test_kernel();
    /* Delete the namespaces even when a check above failed. */
    if (ns_a[0] != 0)
      underlay_netns_delete(ns_a);
    if (ns_b[0] != 0)
      underlay_netns_delete(ns_b);
    test_networks();
    test_several_networks();
    test_conflicts();
    test_dhcp();
    test_parent_in_endpoint();
  } else {
    printf("SKIPPED: kernel cases need root (namespaces, links); CI runs them as root\n");
  }
  printf("test_api: %d checks, %d failed\n", checks, failures);
  return failures == 0 ? 0 : 1;
}
