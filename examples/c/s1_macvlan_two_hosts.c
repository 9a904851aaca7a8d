/*
 * S1 of SCENARIOS.md: one macvlan network spanning two hosts on one L2 segment.
 * host1 and host2 (namespaces) hang on a switch (a bridge in a third namespace); each puts its
 * parent `ens33` in promiscuous mode and creates `mac_net1` (172.22.16.0/24, gateway .1) on it,
 * its own LAN address excluded from allocation (Docker's --aux-address exclude_host=...).
 * Container c1 on host1 gets 172.22.16.10, c2 on host2 172.22.16.20; they ping each other.
 * Run as root; everything lives in namespaces made here and deleted at exit.
 */
#include "lab.h"

static underlay_network *host(underlay_handle *sw, const char *label, const char *port,
                              const char *lan_ip, underlay_networks **nets_out) {
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_network_spec *spec = NULL;
  underlay_network *net = NULL;
  char addr[64], pool[160];
  lab_ns(label, &ns, &h);
  cable(sw, port, ns, h, "ens33");
  snprintf(addr, sizeof addr, "%s/24", lan_ip);
  check(underlay_handle_address_add(h, "ens33", addr), "host address");
  check(underlay_handle_link_set_promisc(h, "ens33", true), "promiscuous parent");
  check(underlay_networks_open(h, lab_dir(label), nets_out), "open networks");
  check(underlay_network_spec_macvlan("mac_net1", "ens33", "bridge", &spec), "spec");
  snprintf(pool, sizeof pool, "172.22.16.0/24 gateway=172.22.16.1 reserve=exclude_host=%s",
           lan_ip);
  check(underlay_network_spec_add_pool(spec, pool), "pool");
  check(underlay_networks_create(*nets_out, spec, &net), "create mac_net1");
  printf("%s: ens33 %s promisc, mac_net1 172.22.16.0/24 gw .1 (%s excluded)\n", label, lan_ip,
         lan_ip);
  underlay_network_spec_free(spec);
  underlay_handle_free(h);
  underlay_netns_free(ns);
  return net;
}

int main(void) {
  int ok = 1;
  underlay_networks *n1 = NULL, *n2 = NULL;
  underlay_endpoint_spec *es = NULL;
  underlay_endpoint *ep = NULL;
  underlay_netns *probe = NULL;
  underlay_handle *probe_h = NULL;
  lab_init("s1");
  printf("S1: one macvlan network spanning two hosts (underlay %s)\n", underlay_version());
  underlay_handle *sw = lab_switch();
  underlay_network *net1 = host(sw, "host1", "p1", "172.22.16.21", &n1);
  underlay_network *net2 = host(sw, "host2", "p2", "172.22.16.22", &n2);
  underlay_netns *c1 = container(net1, "c1", "172.22.16.10");
  underlay_netns *c2 = container(net2, "c2", "172.22.16.20");

  printf("pings (same L2 segment across hosts):\n");
  ok &= ping_expect(c1, "c1 (host1)", "172.22.16.20", 1);
  ok &= ping_expect(c2, "c2 (host2)", "172.22.16.10", 1);

  printf("the host's own address is never handed out:\n");
  lab_ns("c3", &probe, &probe_h);
  check(underlay_endpoint_spec_new("c3", &es), "endpoint spec");
  check(underlay_endpoint_spec_add_ip(es, "172.22.16.21"), "endpoint ip");
  underlay_result res = underlay_network_connect(net1, probe, es, &ep);
  printf("   connect c3 with 172.22.16.21 on host1: %s\n   (%s)\n", underlay_result_name(res),
         underlay_last_error_message());
  ok &= res == UNDERLAY_RESULT_INVALID_ARGUMENT;
  underlay_endpoint_spec_free(es);

  printf("teardown through the library:\n");
  check(underlay_network_disconnect(net1, "c1", "eth0"), "disconnect c1");
  check(underlay_network_disconnect(net2, "c2", "eth0"), "disconnect c2");
  check(underlay_networks_delete(n1, "mac_net1"), "delete host1's mac_net1");
  check(underlay_networks_delete(n2, "mac_net1"), "delete host2's mac_net1");
  printf("   networks deleted\n");

  underlay_handle_free(probe_h);
  underlay_netns_free(probe);
  underlay_netns_free(c1);
  underlay_netns_free(c2);
  underlay_network_free(net1);
  underlay_network_free(net2);
  underlay_networks_free(n1);
  underlay_networks_free(n2);
  underlay_handle_free(sw);
  lab_cleanup();
  printf("%s\n", ok ? "S1: all results as the scenario says" : "S1: !! some results differ");
  return ok ? 0 : 1;
}
