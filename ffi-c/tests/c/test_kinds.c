/*
 * C tests of what the C ABI once lacked and Python had: VLAN protocol and flags, veth peer
 * MAC, address nodad/noprefixroute, alias/group/group delete on an existing link, VXLAN,
 * bridge and ipvlan readback, route fields, namespace inode/path, ARP sysctls, announce.
 * Each is checked against iproute2 (`ip -d -j`, read with substring checks) as well as the
 * library's readback, inside a namespace this test creates. Needs root; VLAN and ipvlan need
 * 8021q and ipvlan: without them the rest runs, then it exits 77 ("skipped") and
 * `cargo xtask c-test` runs it again in the test VM. Run under ASan/UBSan.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "underlay.h"

#include "check.h"

static char ns[64];

/* The output of `ip -n NS ARGS` (an iproute2 oracle), in a static buffer ("" on failure). */
static const char *ip(const char *args) {
  static char buf[65536];
  char cmd[512];
  snprintf(cmd, sizeof cmd, "ip -n '%s' %s 2>/dev/null", ns, args);
  buf[0] = 0;
  FILE *p = popen(cmd, "r");
  if (p == NULL)
    return buf;
  size_t n = fread(buf, 1, sizeof buf - 1, p);
  buf[n] = 0;
  pclose(p);
  return buf;
}

#define ORACLE(args, needle)                                                       \
  do {                                                                             \
    checks++;                                                                      \
    const char *out_ = ip(args);                                                   \
    if (strstr(out_, (needle)) == NULL)                                            \
      FAIL("`ip %s` lacks `%s`: %.400s", (args), (needle), out_);                  \
  } while (0)

static underlay_link *make(underlay_link_builder *b) {
  underlay_link *l = NULL;
  OK(underlay_link_builder_execute(b, &l));
  underlay_link_builder_free(b);
  return l;
}

static void test_links(underlay_handle *h, underlay_netns *n) {
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  underlay_link_list *links = NULL;

  /* veth: the peer's MAC. */
  OK(underlay_link_builder_veth(h, "bad0", "bad1", &b));
  OK(underlay_link_builder_veth_peer_mac(b, "01:00:5e:00:00:01"));
  EXPECT(underlay_link_builder_execute(b, &l), UNDERLAY_RESULT_INVALID_ARGUMENT, "multicast");
  TRUE(l == NULL && strstr(ip("-j link show"), "\"bad0\"") == NULL);
  underlay_link_builder_free(b);
  OK(underlay_link_builder_veth(h, "ens192", "peer0", &b));
  EXPECT(underlay_link_builder_veth_peer_mac(b, NULL), UNDERLAY_RESULT_NULL_PARAMETER,
         "`mac_address`");
  OK(underlay_link_builder_veth_peer_mac(b, "02:42:ac:16:10:0b"));
  OK(underlay_link_builder_veth_peer_up(b));
  OK(underlay_link_builder_set_up(b));
  EXPECT(underlay_link_builder_vlan_protocol(b, "802.1ad"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "vlan");
  underlay_link_free(make(b));
  OK(underlay_handle_link_get(h, "peer0", &l));
  TRUE(l != NULL && strcmp(underlay_link_mac(l), "02:42:ac:16:10:0b") == 0);
  underlay_link_free(l);
  ORACLE("-j link show peer0", "\"address\":\"02:42:ac:16:10:0b\"");
  {
    uint32_t idx = 0;
    OK(underlay_handle_link_index(h, "ens192", &idx));
    TRUE(idx > 1);
    EXPECT(underlay_handle_link_index(h, "ghost0", &idx), UNDERLAY_RESULT_NOT_FOUND, "ghost0");
  }

  /* VXLAN read back field by field. */
  OK(underlay_link_builder_vxlan(h, "vx0", 4242, &b));
  OK(underlay_link_builder_vxlan_local(b, "10.1.0.1"));
  OK(underlay_link_builder_vxlan_remote(b, "10.1.0.2"));
  OK(underlay_link_builder_vxlan_device(b, "ens192"));
  OK(underlay_link_builder_vxlan_port(b, 4790));
  OK(underlay_link_builder_vxlan_learning(b, false));
  l = make(b);
  if (l != NULL) {
    uint32_t dev = 0;
    OK(underlay_handle_link_index(h, "ens192", &dev));
    TRUE(strcmp(underlay_link_vxlan_local(l), "10.1.0.1") == 0);
    TRUE(strcmp(underlay_link_vxlan_remote(l), "10.1.0.2") == 0);
    TRUE(underlay_link_vxlan_port(l) == 4790 && !underlay_link_vxlan_learning(l));
    TRUE(underlay_link_vxlan_device_index(l) == dev);
    TRUE(underlay_link_vlan_protocol(l) == NULL && underlay_link_ipvlan_flag(l) == NULL);
    underlay_vlan_flags f;
    EXPECT(underlay_link_vlan_flags(l, &f), UNDERLAY_RESULT_INVALID_ARGUMENT, "vx0");
    underlay_link_free(l);
  }
  ORACLE("-d -j link show vx0", "\"local\":\"10.1.0.1\"");
  ORACLE("-d -j link show vx0", "\"remote\":\"10.1.0.2\"");
  ORACLE("-d -j link show vx0", "\"port\":4790");
  ORACLE("-d -j link show vx0", "\"learning\":false");
  OK(underlay_link_builder_vxlan(h, "vx1", 4243, &b));
  l = make(b);
  TRUE(underlay_link_vxlan_learning(l) && underlay_link_vxlan_local(l) == NULL &&
       underlay_link_vxlan_device_index(l) == 0 && underlay_link_vxlan_port(l) == 4789);
  underlay_link_free(l);

  /* Alias and group on an existing link; a group deleted at once. */
  OK(underlay_handle_link_set_alias(h, "vx1", "the overlay"));
  OK(underlay_handle_link_set_group(h, "vx1", 42));
  OK(underlay_handle_link_get(h, "vx1", &l));
  TRUE(l != NULL && strcmp(underlay_link_alias(l), "the overlay") == 0 &&
       underlay_link_group(l) == 42);
  underlay_link_free(l);
  ORACLE("-j link show vx1", "\"ifalias\":\"the overlay\"");
  ORACLE("-j link show group 42", "\"ifname\":\"vx1\"");
  EXPECT(underlay_handle_link_set_alias(h, "ghost0", "x"), UNDERLAY_RESULT_NOT_FOUND, "ghost0");
  EXPECT(underlay_handle_link_set_group(h, NULL, 1), UNDERLAY_RESULT_NULL_PARAMETER, "`name`");
  OK(underlay_handle_link_set_group(h, "vx0", 42));
  OK(underlay_handle_link_delete_group(h, 42));
  TRUE(strstr(ip("-j link show"), "\"vx0\"") == NULL && strstr(ip("-j link show"), "\"vx1\"") == NULL);
  checks++;
  OK(underlay_handle_link_list(h, &links));
  for (size_t i = 0; i < underlay_link_list_count(links); i++) {
    const underlay_link *x = underlay_link_list_get(links, i);
    TRUE(underlay_link_oper_state(x) != NULL);
    TRUE(underlay_link_group(x) != 42);
  }
  underlay_link_list_free(links);
  OK(underlay_handle_link_get(h, "ens192", &l));
  if (l != NULL) {
    char state[32], want[64];
    size_t k = 0;
    for (const char *c = underlay_link_oper_state(l); *c && k + 1 < sizeof state; c++)
      state[k++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c); /* ip says "UP" */
    state[k] = 0;
    snprintf(want, sizeof want, "\"operstate\":\"%s\"", state);
    ORACLE("-j link show ens192", want);
    underlay_link_free(l);
  }

  /* The handle's namespace: same inode, the path it was opened from. */
  {
    underlay_netns *mine = NULL;
    char want[128];
    OK(underlay_handle_netns(h, &mine));
    TRUE(mine != NULL && underlay_netns_inode(mine) == underlay_netns_inode(n));
    TRUE(underlay_netns_inode(n) != 0);
    char *path = underlay_netns_path(n);
    snprintf(want, sizeof want, "/run/netns/%s", ns);
    TRUE(path != NULL && strcmp(path, want) == 0);
    underlay_string_free(path);
    underlay_netns_free(mine);
  }

  /* ARP sysctls: the kernel's value is the oracle (read through /proc inside the namespace). */
  OK(underlay_netns_set_arp_ignore(n, "ens192", 1));
  OK(underlay_netns_set_arp_announce(n, "all", 2));
  OK(underlay_netns_set_accept_dad(n, "default", 0));
  {
    char cmd[256], buf[16] = "";
    snprintf(cmd, sizeof cmd, "ip netns exec '%s' cat /proc/sys/net/ipv4/conf/ens192/arp_ignore",
             ns);
    FILE *p = popen(cmd, "r");
    if (p != NULL) {
      if (fgets(buf, sizeof buf, p) == NULL)
        buf[0] = 0;
      pclose(p);
    }
    TRUE(strcmp(buf, "1\n") == 0);
  }
  EXPECT(underlay_netns_set_arp_ignore(n, "ens192", 9), UNDERLAY_RESULT_INVALID_ARGUMENT, "out of range 0..8");
  EXPECT(underlay_netns_set_arp_ignore(n, "ens192", -1), UNDERLAY_RESULT_INVALID_ARGUMENT, "value -1 is out of range 0..8");
  EXPECT(underlay_netns_set_arp_announce(n, "ens192", 3), UNDERLAY_RESULT_INVALID_ARGUMENT, "out of range 0..2");
  EXPECT(underlay_netns_set_accept_dad(n, "ens192", 5), UNDERLAY_RESULT_INVALID_ARGUMENT, "accept_dad");
  EXPECT(underlay_netns_set_arp_ignore(n, "bad/name", 1), UNDERLAY_RESULT_INVALID_ARGUMENT, "bad/name");

  /* Addresses with nodad and noprefixroute; announce them. */
  OK(underlay_handle_address_add_with(h, "ens192", "fd00:77::5/64", true, true));
  OK(underlay_handle_address_add_with(h, "ens192", "10.77.0.5/24", false, false));
  EXPECT(underlay_handle_address_add_with(h, "ens192", "10.77.0.5", false, false),
         UNDERLAY_RESULT_INVALID_ARGUMENT, "prefix");
  {
    underlay_address_list *addrs = NULL;
    int seen = 0;
    OK(underlay_handle_address_list(h, "ens192", &addrs));
    for (size_t i = 0; i < underlay_address_list_count(addrs); i++) {
      const underlay_address *a = underlay_address_list_get(addrs, i);
      if (strcmp(underlay_address_string(a), "fd00:77::5/64") == 0) {
        seen++;
        TRUE(underlay_address_nodad(a) && underlay_address_noprefixroute(a));
        TRUE(!underlay_address_tentative(a));
      }
      if (strcmp(underlay_address_string(a), "10.77.0.5/24") == 0) {
        seen++;
        TRUE(!underlay_address_nodad(a) && !underlay_address_noprefixroute(a));
      }
    }
    TRUE(seen == 2);
    underlay_address_list_free(addrs);
  }
  ORACLE("-j addr show dev ens192", "\"nodad\":true");
  ORACLE("-j addr show dev ens192", "\"noprefixroute\":true");
  TRUE(strstr(ip("-6 route show fd00:77::/64"), "fd00:77::/64") == NULL);
  checks++;
  {
    const char *ips[] = {"10.77.0.5"};
    uint32_t idx = 0;
    OK(underlay_handle_link_index(h, "ens192", &idx));
    OK(underlay_netns_announce(n, idx, "02:42:ac:16:10:0c", ips, 1));
    EXPECT(underlay_netns_announce(n, idx, "01:00:5e:00:00:01", ips, 1),
           UNDERLAY_RESULT_INVALID_ARGUMENT, "multicast");
    EXPECT(underlay_netns_announce(n, idx, "02:42:ac:16:10:0c", NULL, (size_t)1 << 40),
           UNDERLAY_RESULT_NULL_PARAMETER, "`ips`");
  }

  /* Route fields read back: the kernel's prefix route of 10.77.0.5/24, and a built route. */
  {
    underlay_route *r = NULL;
    underlay_route_list *routes = NULL;
    uint32_t idx = 0;
    int seen = 0;
    OK(underlay_handle_link_index(h, "ens192", &idx));
    OK(underlay_route_new("10.78.0.0/16", &r));
    OK(underlay_route_set_via(r, "10.77.0.1"));
    OK(underlay_route_set_metric(r, 300));
    OK(underlay_route_set_source(r, "10.77.0.5"));
    TRUE(strcmp(underlay_route_destination(r), "10.78.0.0/16") == 0);
    TRUE(strcmp(underlay_route_gateway(r), "10.77.0.1") == 0);
    TRUE(underlay_route_metric(r) == 300 && underlay_route_table(r) == 254);
    TRUE(strcmp(underlay_route_source(r), "10.77.0.5") == 0 && underlay_route_dev(r) == NULL);
    OK(underlay_handle_route_add(h, r));
    underlay_route_free(r);
    ORACLE("-j route show 10.78.0.0/16", "\"metric\":300");
    OK(underlay_handle_route_list(h, 254, &routes));
    for (size_t i = 0; i < underlay_route_list_count(routes); i++) {
      const underlay_route *x = underlay_route_list_get(routes, i);
      if (strcmp(underlay_route_destination(x), "10.77.0.0/24") == 0) {
        seen++;
        TRUE(underlay_route_gateway(x) == NULL && underlay_route_dev_index(x) == idx);
        TRUE(strcmp(underlay_route_scope(x), "link") == 0);
        TRUE(strcmp(underlay_route_source(x), "10.77.0.5") == 0);
      }
      if (strcmp(underlay_route_destination(x), "10.78.0.0/16") == 0) {
        seen++;
        TRUE(strcmp(underlay_route_gateway(x), "10.77.0.1") == 0 && underlay_route_metric(x) == 300);
        TRUE(strcmp(underlay_route_scope(x), "universe") == 0);
      }
    }
    TRUE(seen == 2);
    underlay_route_list_free(routes);
    TRUE(underlay_route_metric(NULL) == -1 && underlay_route_destination(NULL) == NULL &&
         underlay_route_scope(NULL) == NULL);
  }
}

/* Networks: getters, create_or_open, announce setting, the network's IPAM, attach's report,
 * disconnect for a deleted namespace, reconcile's gone addresses. */
static void test_networks(underlay_handle *h) {
  char root[] = "/tmp/ulck-state-XXXXXX", ctr[64], cmd[256];
  underlay_networks *nets = NULL;
  underlay_network_spec *sp = NULL;
  underlay_network *net = NULL, *again = NULL;
  underlay_netns *cns = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  if (mkdtemp(root) == NULL) {
    FAIL("mkdtemp");
    return;
  }
  snprintf(ctr, sizeof ctr, "ulck-c-%d", (int)getpid());
  OK(underlay_networks_open(h, root, &nets));
  OK(underlay_network_spec_macvlan("cn1", "ens192", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "10.79.0.0/24 gateway=10.79.0.1"));
  OK(underlay_network_spec_set_mtu(sp, 1400));
  OK(underlay_networks_create_or_open(nets, sp, &net));
  OK(underlay_networks_create_or_open(nets, sp, &again));
  underlay_network_spec_free(sp);
  sp = NULL;
  if (net == NULL || again == NULL)
    goto out;
  TRUE(strcmp(underlay_network_name(again), "cn1") == 0);
  TRUE(strcmp(underlay_network_lower(net), "ens192") == 0 && underlay_network_mtu(net) == 1400);
  TRUE(underlay_network_pool_count(net) == 1 &&
       strncmp(underlay_network_pool(net, 0), "10.79.0.0/24", 12) == 0 &&
       underlay_network_pool(net, 1) == NULL);
  TRUE(underlay_network_host_access(net) == NULL);
  TRUE(strcmp(underlay_network_mode(net), "bridge") == 0 && underlay_network_mode(NULL) == NULL);
  OK(underlay_network_spec_macvlan("cn1", "ens192", "bridge", &sp));
  OK(underlay_network_spec_add_pool(sp, "10.79.0.0/24 gateway=10.79.0.1"));
  OK(underlay_network_spec_set_mtu(sp, 1300));
  {
    underlay_network *other = NULL;
    EXPECT(underlay_networks_create_or_open(nets, sp, &other), UNDERLAY_RESULT_CONFLICT, "1300");
    TRUE(other == NULL);
  }
  underlay_network_spec_free(sp);
  {
    underlay_export *e = NULL;
    EXPECT(underlay_network_export(net, "networkd", &e), UNDERLAY_RESULT_INVALID_ARGUMENT,
           "not a VLAN");
    TRUE(e == NULL);
  }

  OK(underlay_netns_create(ctr, &cns));
  OK(underlay_endpoint_spec_new("ctr1", &es));
  EXPECT(underlay_endpoint_spec_set_announce(es, "loud"), UNDERLAY_RESULT_INVALID_ARGUMENT, "loud");
  OK(underlay_endpoint_spec_set_announce(es, "kernel"));
  OK(underlay_endpoint_spec_set_announce(es, "off"));
  OK(underlay_network_connect(net, cns, es, &ep));
  underlay_endpoint_spec_free(es);
  es = NULL;
  if (ep != NULL) {
    char want[128];
    snprintf(want, sizeof want, "/run/netns/%s", ctr);
    TRUE(underlay_endpoint_netns(ep) != NULL && strcmp(underlay_endpoint_netns(ep), want) == 0);
  }
  {
    underlay_ipam *ipam = NULL;
    underlay_lease_list *leases = NULL;
    OK(underlay_network_ipam(net, &ipam));
    OK(underlay_ipam_list(ipam, &leases));
    TRUE(underlay_lease_list_count(leases) == 1 &&
         strcmp(underlay_lease_container_id(underlay_lease_list_get(leases, 0)), "ctr1") == 0);
    underlay_lease_list_free(leases);
    leases = NULL;

    /* A second endpoint whose namespace is going away: only its lease and record go. */
    underlay_endpoint *ep2 = NULL;
    OK(underlay_endpoint_spec_new("ctr2", &es));
    OK(underlay_endpoint_spec_set_ifname(es, "eth1"));
    OK(underlay_network_connect(net, cns, es, &ep2));
    underlay_endpoint_spec_free(es);
    es = NULL;
    underlay_endpoint_free(ep2);
    OK(underlay_network_disconnect_for_netns_deletion(net, "ctr2", "eth1"));
    OK(underlay_ipam_list(ipam, &leases));
    TRUE(underlay_lease_list_count(leases) == 1);
    underlay_lease_list_free(leases);
    underlay_ipam_free(ipam);
  }

  /* Attach: a macvlan moved into a namespace of its own with an address and a gateway. */
  {
    char other[64];
    underlay_netns *ans = NULL;
    snprintf(other, sizeof other, "ulck-a-%d", (int)getpid());
    OK(underlay_netns_create(other, &ans));
    underlay_link_builder *b = NULL;
    underlay_attach *at = NULL;
    underlay_attached *done = NULL;
    OK(underlay_link_builder_macvlan(h, "mvx", "ens192", "bridge", &b));
    underlay_link_free(make(b));
    OK(underlay_attach_new(h, "mvx", ans, &at));
    OK(underlay_attach_set_name(at, "eth9"));
    OK(underlay_attach_add_address(at, "10.80.0.5/24"));
    OK(underlay_attach_set_gateway(at, "10.80.0.1"));
    OK(underlay_attach_execute_attached(at, &done));
    underlay_attach_free(at);
    TRUE(done != NULL && strcmp(underlay_link_name(underlay_attached_link(done)), "eth9") == 0);
    TRUE(underlay_attached_address_count(done) == 1 &&
         strcmp(underlay_attached_address(done, 0), "10.80.0.5/24") == 0 &&
         underlay_attached_address(done, 1) == NULL);
    TRUE(underlay_attached_route_count(done) == 1 &&
         strcmp(underlay_route_destination(underlay_attached_route(done, 0)), "0.0.0.0/0") == 0 &&
         strcmp(underlay_route_gateway(underlay_attached_route(done, 0)), "10.80.0.1") == 0);
    underlay_attached_free(done);
    underlay_attached_free(NULL);
    snprintf(cmd, sizeof cmd, "ip -n '%s' -j route show default", other);
    FILE *p = popen(cmd, "r");
    char buf[4096] = "";
    if (p != NULL) {
      size_t k = fread(buf, 1, sizeof buf - 1, p);
      buf[k] = 0;
      pclose(p);
    }
    TRUE(strstr(buf, "\"gateway\":\"10.80.0.1\"") != NULL && strstr(buf, "\"dev\":\"eth9\"") != NULL);
    underlay_netns_free(ans);
    OK(underlay_netns_delete(other));
  }

  /* The container's namespace goes: reconcile reports the endpoint with its address. */
  underlay_netns_free(cns);
  cns = NULL;
  OK(underlay_netns_delete(ctr));
  {
    underlay_reconcile_report *rep = NULL;
    OK(underlay_networks_reconcile(nets, &rep));
    const underlay_string_list *gone = underlay_reconcile_report_gone_endpoints(rep);
    TRUE(underlay_string_list_count(gone) == 1);
    const underlay_string_list *addrs = underlay_reconcile_report_gone_addresses(rep, 0);
    TRUE(underlay_string_list_count(addrs) == 1 && ep != NULL &&
         strcmp(underlay_string_list_get(addrs, 0), underlay_endpoint_address(ep, 0)) == 0);
    TRUE(underlay_reconcile_report_gone_addresses(rep, 1) == NULL);
    underlay_reconcile_report_free(rep);
  }
  OK(underlay_networks_delete(nets, "cn1"));
out:
  underlay_endpoint_free(ep);
  underlay_network_free(net);
  underlay_network_free(again);
  underlay_networks_free(nets);
  if (cns != NULL) {
    underlay_netns_free(cns);
    underlay_netns_delete(ctr);
  }
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd) != 0)
    FAIL("%s", cmd);
}

/* Bridge VLAN filtering, VLAN and ipvlan: 1 when done, 0 when the kernel lacks them. */
static int test_vlan_ipvlan(underlay_handle *h) {
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  underlay_vlan_flags f = {false, true, false, true};
  underlay_result res;

  OK(underlay_link_builder_bridge(h, "br0", &b));
  OK(underlay_link_builder_bridge_vlan_filtering(b, true));
  res = underlay_link_builder_execute(b, &l);
  underlay_link_builder_free(b);
  if (res == UNDERLAY_RESULT_KERNEL_UNSUPPORTED) {
    printf("test_kinds: skipped: bridge VLAN filtering, VLAN and ipvlan (%s)\n",
           underlay_last_error_message());
    return 0;
  }
  EXPECT(res, UNDERLAY_RESULT_OK, NULL);
  TRUE(underlay_link_bridge_vlan_filtering(l));
  underlay_link_free(l);
  l = NULL;
  ORACLE("-d -j link show br0", "\"vlan_filtering\":1");
  OK(underlay_link_builder_vlan(h, "ens192", 30, &b));
  EXPECT(underlay_link_builder_vlan_protocol(b, "802.1x"), UNDERLAY_RESULT_INVALID_ARGUMENT,
         "802.1ad");
  EXPECT(underlay_link_builder_vlan_protocol(b, NULL), UNDERLAY_RESULT_NULL_PARAMETER,
         "`protocol`");
  OK(underlay_link_builder_vlan_protocol(b, "802.1ad"));
  OK(underlay_link_builder_vlan_flags(b, f));
  res = underlay_link_builder_execute(b, &l);
  underlay_link_builder_free(b);
  if (res == UNDERLAY_RESULT_KERNEL_UNSUPPORTED) {
    printf("test_kinds: skipped: VLAN and ipvlan (the kernel has no 8021q: %s)\n",
           underlay_last_error_message());
    return 0;
  }
  EXPECT(res, UNDERLAY_RESULT_OK, NULL);
  if (l != NULL) {
    underlay_vlan_flags got = {true, true, true, true};
    TRUE(strcmp(underlay_link_vlan_protocol(l), "802.1ad") == 0);
    OK(underlay_link_vlan_flags(l, &got));
    TRUE(!got.reorder_hdr && got.gvrp && !got.mvrp && got.loose_binding);
    underlay_link_free(l);
  }
  ORACLE("-d -j link show ens192.30", "\"protocol\":\"802.1ad\"");
  {
    /* A network's VLAN parent exported for the distribution's tools. */
    char root[] = "/tmp/ulck-vlan-XXXXXX", cmd[128];
    underlay_networks *nets = NULL;
    underlay_network_spec *sp = NULL;
    underlay_network *net = NULL;
    underlay_export *e = NULL;
    if (mkdtemp(root) != NULL) {
      OK(underlay_networks_open(h, root, &nets));
      OK(underlay_network_spec_macvlan("v40", "ens192.40", "bridge", &sp));
      OK(underlay_network_spec_add_pool(sp, "10.40.0.0/24"));
      OK(underlay_networks_create(nets, sp, &net));
      OK(underlay_network_export(net, "ifupdown", &e));
      TRUE(underlay_export_count(e) == 1 &&
           strstr(underlay_export_content(e, 0), "ens192.40") != NULL);
      underlay_export_free(e);
      underlay_network_free(net);
      OK(underlay_networks_delete(nets, "v40"));
      underlay_network_spec_free(sp);
      underlay_networks_free(nets);
      snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
      if (system(cmd) != 0)
        FAIL("%s", cmd);
    }
  }
  ORACLE("-d -j link show ens192.30", "\"GVRP\"");
  ORACLE("-d -j link show ens192.30", "\"LOOSE_BINDING\"");
  TRUE(strstr(ip("-d -j link show ens192.30"), "REORDER_HDR") == NULL);
  checks++;

  OK(underlay_link_builder_ipvlan(h, "ipv0", "ens192", "l2", "private", &b));
  res = underlay_link_builder_execute(b, &l);
  underlay_link_builder_free(b);
  if (res == UNDERLAY_RESULT_KERNEL_UNSUPPORTED) {
    printf("test_kinds: skipped: ipvlan (%s)\n", underlay_last_error_message());
    return 0;
  }
  EXPECT(res, UNDERLAY_RESULT_OK, NULL);
  TRUE(l != NULL && strcmp(underlay_link_ipvlan_flag(l), "private") == 0 &&
       strcmp(underlay_link_mode(l), "l2") == 0);
  underlay_link_free(l);
  ORACLE("-d -j link show ipv0", "\"private\"");
  return 1;
}

int main(void) {
  underlay_netns *n = NULL;
  underlay_handle *h = NULL;
  int complete = 1;
  if (geteuid() != 0) {
    printf("test_kinds: skipped: needs root (CI runs it as root)\n");
    return 0;
  }
  snprintf(ns, sizeof ns, "ulck-%d", (int)getpid());
  OK(underlay_handle_create_netns(ns, &n, &h));
  if (n != NULL && h != NULL) {
    test_links(h, n);
    test_networks(h);
    complete = test_vlan_ipvlan(h);
  }
  underlay_handle_free(h);
  underlay_netns_free(n);
  OK(underlay_netns_delete(ns));
  printf("test_kinds: %d checks, %d failed\n", checks, failures);
  if (failures != 0)
    return 1;
  return complete ? 0 : 77;
}
