# An os-ken application for portmirror's benchmark (part 2): when a bridge connects, it installs the flows listed
# in $PMBENCH_FLOWS (JSON, one flow per line, written by the benchmark from the same compiled flows) with one
# OpenFlow 1.3 flow_mod each, then one barrier, and writes the time from the first flow_mod to the barrier reply
# into $PMBENCH_RESULT. Run with: osken-manager --ofp-listen-host 127.0.0.1 --ofp-tcp-listen-port PORT osken_app.py
import json
import os
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, MAIN_DISPATCHER, set_ev_cls
from os_ken.ofproto import ofproto_v1_3


class BulkInstall(app_manager.OSKenApp):
    OFP_VERSIONS = [ofproto_v1_3.OFP_VERSION]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        with open(os.environ["PMBENCH_FLOWS"]) as f:
            self.flows = [json.loads(line) for line in f if line.strip()]
        self.result = os.environ["PMBENCH_RESULT"]
        self.t0 = None
        self.errors = 0
        self.first_error = ""

    def _actions(self, dp, acts):
        ofp, parser = dp.ofproto, dp.ofproto_parser
        out = []
        for a in acts:
            if a[0] == "normal":
                out.append(parser.OFPActionOutput(ofp.OFPP_NORMAL, 0))
            elif a[0] == "output":
                out.append(parser.OFPActionOutput(a[1], 0))
            elif a[0] == "tun_id":
                out.append(parser.OFPActionSetField(tunnel_id=a[1]))
            elif a[0] == "tun_dst":
                out.append(parser.OFPActionSetField(tun_ipv4_dst=a[1]))
            elif a[0] == "reg0":
                out.append(parser.OFPActionSetField(reg0=a[1]))
            elif a[0] == "resubmit":
                out.append(parser.NXActionResubmitTable(in_port=0xfff8, table_id=a[1]))
            else:
                raise ValueError("unknown action %r" % (a,))
        return out

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    def features(self, ev):
        dp = ev.msg.datapath
        ofp, parser = dp.ofproto, dp.ofproto_parser
        self.t0 = time.perf_counter()
        for f in self.flows:
            m = {}
            if f.get("in_port"):
                m["in_port"] = f["in_port"]
            if f.get("tun_id") is not None:
                m["tunnel_id"] = f["tun_id"]
            if f.get("eth_dst"):
                m["eth_dst"] = (f["eth_dst"], f["eth_dst_mask"])
            if f.get("reg0") is not None:
                m["reg0"] = f["reg0"]
            acts = self._actions(dp, f["actions"])
            inst = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, acts)] if acts else []
            dp.send_msg(parser.OFPFlowMod(datapath=dp, cookie=f["cookie"], table_id=f["table"],
                                          command=ofp.OFPFC_ADD, priority=f["priority"],
                                          buffer_id=ofp.OFP_NO_BUFFER, match=parser.OFPMatch(**m),
                                          instructions=inst))
        dp.send_msg(parser.OFPBarrierRequest(dp))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def error(self, ev):
        self.errors += 1
        if not self.first_error:
            self.first_error = "type %d code %d" % (ev.msg.type, ev.msg.code)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, [CONFIG_DISPATCHER, MAIN_DISPATCHER])
    def barrier(self, ev):
        elapsed = time.perf_counter() - self.t0
        tmp = self.result + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"seconds": elapsed, "flow_mods": len(self.flows), "errors": self.errors,
                       "first_error": self.first_error}, f)
        os.rename(tmp, self.result)
