/*
 * S2 of SCENARIOS.md: several networks on one NIC through 802.1Q VLAN sub-interfaces.
 * Two hosts on a trunk (a bridge in a switch namespace). On each, `mac_net10` (172.16.10.0/24)
 * on `ens192.10` and `mac_net20` (172.16.20.0/24) on `ens192.20`, given in Docker's words
 * (parent=ens192.10): the sub-interfaces do not exist, underlay makes them, and deletes them
 * with their last network. Containers bbox_10_1/bbox_20_1 on host1, bbox_10_2/bbox_20_2 on
 * host2: the same VLAN answers across hosts, different VLANs are isolated (no router).
 * Needs the kernel's 8021q: without it, prints "skipped: kernel has no 8021q" and exits 77
 * (`cargo xtask c-test` then runs it in the test VM). Run as root.
 */
#include "lab.h"

#define SKIP 77

static int kernel_has_8021q(void) {
  underlay_netns *ns = NULL;
  underlay_handle *h = NULL;
  underlay_link_builder *b = NULL;
  underlay_link *l = NULL;
  underlay_result res;
  lab_ns("probe", &ns, &h);
  check(underlay_link_builder_veth(h, "probe0", "probe1", &b), "veth");
  check(underlay_link_builder_execute(b, &l), "probe veth");
  underlay_link_free(l);
  underlay_link_builder_free(b);
  check(underlay_link_builder_vlan(h, "probe0", 10, &b), "vlan");
  l = NULL;
  res = underlay_link_builder_execute(b, &l);
  if (res != UNDERLAY_RESULT_OK && res != UNDERLAY_RESULT_KERNEL_UNSUPPORTED)
    check(res, "probe VLAN");
  if (res == UNDERLAY_RESULT_KERNEL_UNSUPPORTED)
    printf("(%s)\n", underlay_last_error_message());
  underlay_link_free(l);
  underlay_link_builder_free(b);
  underlay_handle_free(h);
  underlay_netns_free(ns);
  return res == UNDERLAY_RESULT_OK;
}

static underlay_network *vlan_net(underlay_networks *nets, const char *name, const char *parent,
                                  const char *pool) {
  const char *keys[] = {"parent"};
  const char *values[] = {parent};
  underlay_network_spec *spec = NULL;
  underlay_network *net = NULL;
  check(underlay_network_spec_from_docker(name, "macvlan", keys, values, 1, &spec), "spec");
  check(underlay_network_spec_add_pool(spec, pool), "pool");
  check(underlay_networks_create(nets, spec, &net), "create network");
  underlay_network_spec_free(spec);
  return net;
}

static int vlan_links_left(underlay_handle *h) {
  underlay_link_list *links = NULL;
  int n = 0;
  check(underlay_handle_link_list(h, &links), "list links");
  for (size_t i = 0; i < underlay_link_list_count(links); i++)
    n += strncmp(underlay_link_name(underlay_link_list_get(links, i)), "ens192.", 7) == 0;
  underlay_link_list_free(links);
  return n;
}

int main(void) {
  int ok = 1;
  underlay_netns *hn[2] = {NULL, NULL};
  underlay_handle *hh[2] = {NULL, NULL};
  underlay_networks *nets[2] = {NULL, NULL};
  underlay_network *v10[2], *v20[2];
  underlay_netns *c10[2], *c20[2];
  lab_init("s2");
  printf("S2: several networks on one NIC through VLAN sub-interfaces (underlay %s)\n",
         underlay_version());
  if (!kernel_has_8021q()) {
    printf("skipped: kernel has no 8021q (VLAN) support\n");
    lab_cleanup();
    return SKIP;
  }
  underlay_handle *sw = lab_switch();
  for (int i = 0; i < 2; i++) {
    char label[32], port[32];
    snprintf(label, sizeof label, "host%d", i + 1);
    snprintf(port, sizeof port, "p%d", i + 1);
    lab_ns(label, &hn[i], &hh[i]);
    cable(sw, port, hn[i], hh[i], "ens192");
    check(underlay_networks_open(hh[i], lab_dir(label), &nets[i]), "open networks");
    v10[i] = vlan_net(nets[i], "mac_net10", "ens192.10", "172.16.10.0/24 gateway=172.16.10.1");
    v20[i] = vlan_net(nets[i], "mac_net20", "ens192.20", "172.16.20.0/24 gateway=172.16.20.1");
    printf("%s: mac_net10 on ens192.10, mac_net20 on ens192.20 (VLANs made by underlay)\n",
           label);
  }
  c10[0] = container(v10[0], "bbox_10_1", "172.16.10.101");
  c20[0] = container(v20[0], "bbox_20_1", "172.16.20.201");
  c10[1] = container(v10[1], "bbox_10_2", "172.16.10.102");
  c20[1] = container(v20[1], "bbox_20_2", "172.16.20.202");

  printf("same VLAN across hosts (L2), different VLANs isolated (no router):\n");
  ok &= ping_expect(c10[0], "bbox_10_1 (host1)", "172.16.10.102", 1);
  ok &= ping_expect(c20[0], "bbox_20_1 (host1)", "172.16.20.202", 1);
  ok &= ping_expect(c10[1], "bbox_10_2 (host2)", "172.16.10.101", 1);
  ok &= ping_expect(c10[0], "bbox_10_1 (host1)", "172.16.20.202", 0);
  ok &= ping_expect(c20[1], "bbox_20_2 (host2)", "172.16.10.101", 0);

  printf("teardown: disconnect, delete networks (their VLANs go with the last one):\n");
  for (int i = 0; i < 2; i++) {
    char id10[32], id20[32];
    snprintf(id10, sizeof id10, "bbox_10_%d", i + 1);
    snprintf(id20, sizeof id20, "bbox_20_%d", i + 1);
    check(underlay_network_disconnect(v10[i], id10, "eth0"), "disconnect");
    check(underlay_network_disconnect(v20[i], id20, "eth0"), "disconnect");
    check(underlay_networks_delete(nets[i], "mac_net10"), "delete mac_net10");
    check(underlay_networks_delete(nets[i], "mac_net20"), "delete mac_net20");
    int left = vlan_links_left(hh[i]);
    printf("   host%d: VLAN sub-interfaces left: %d\n", i + 1, left);
    ok &= left == 0;
    underlay_network_free(v10[i]);
    underlay_network_free(v20[i]);
    underlay_netns_free(c10[i]);
    underlay_netns_free(c20[i]);
    underlay_networks_free(nets[i]);
    underlay_handle_free(hh[i]);
    underlay_netns_free(hn[i]);
  }
  underlay_handle_free(sw);
  lab_cleanup();
  printf("%s\n", ok ? "S2: all results as the scenario says" : "S2: !! some results differ");
  return ok ? 0 : 1;
}
