// What this build compiled in: the BPF objects (skeleton bytes, by name) and
// the event ABI as the compiler laid it out (offsetof), which test/unit/kernel/abi
// holds against the TypeScript decoder so C and TS cannot drift apart.
#include "common.h"
#include "jitterscope.h"

#include <cstddef>

#include "tracer.skel.h"
#include "ipvs.skel.h"
#include "features.skel.h"
#include "lab_stall.skel.h"
#include "bench_gen.skel.h"
#include "symbols.skel.h"

static_assert(sizeof(struct js_event) == JS_EVENT_SIZE, "js_event size changed: update JS_EVENT_SIZE and src/kernel/abi.ts");
static_assert(offsetof(struct js_event, softirq.wait_ns) == 32, "js_event union moved");
static_assert(sizeof(struct js_event) % 8 == 0, "ring records stay 8-byte aligned");
static_assert(JS_MAX_CPUS % 64 == 0, "cpu mask must be whole words");

namespace js {

static const EmbeddedObject kEmbedded[] = {
    {"tracer", tracer__elf_bytes},
    {"ipvs", ipvs__elf_bytes},
    {"features", features__elf_bytes},
    {"lab_stall", lab_stall__elf_bytes},
    {"bench_gen", bench_gen__elf_bytes},
    {"symbols", symbols__elf_bytes},
};

const EmbeddedObject *FindEmbedded(const std::string &name) {
  for (auto &e : kEmbedded)
    if (name == e.name) return &e;
  return nullptr;
}

// layout(): the event ABI as this build compiled it.
static Napi::Value Layout(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("abiVersion", JS_ABI_VERSION);
  o.Set("eventSize", static_cast<uint32_t>(sizeof(struct js_event)));
  o.Set("maxCpus", JS_MAX_CPUS);
  Napi::Object off = Napi::Object::New(env);
#define OFF(field, path) off.Set(field, static_cast<uint32_t>(offsetof(struct js_event, path)))
  OFF("start_ns", start_ns);
  OFF("duration_ns", duration_ns);
  OFF("key", key);
  OFF("cpu", cpu);
  OFF("kind", kind);
  OFF("flags", flags);
  OFF("softirq.wait_ns", softirq.wait_ns);
  OFF("softirq.thread_pid", softirq.thread_pid);
  OFF("pkt.saddr", pkt.saddr);
  OFF("pkt.daddr", pkt.daddr);
  OFF("pkt.sport", pkt.sport);
  OFF("pkt.dport", pkt.dport);
  OFF("pkt.arrival_cpu", pkt.arrival_cpu);
  OFF("pkt.proto", pkt.proto);
  OFF("pkt.type", pkt.type);
  OFF("pkt.code", pkt.code);
  OFF("task.comm", task.comm);
  OFF("task.pid", task.pid);
  OFF("task.tgid", task.tgid);
  OFF("wake.comm", wake.comm);
  OFF("wake.pid", wake.pid);
  OFF("wake.tgid", wake.tgid);
  OFF("wake.stolen_ns", wake.stolen_ns);
  OFF("wake.queued_ns", wake.queued_ns);
  OFF("wake.waker_cpu", wake.waker_cpu);
#undef OFF
  o.Set("offsets", off);
  Napi::Object kinds = Napi::Object::New(env);
  kinds.Set("SOFTIRQ", static_cast<uint32_t>(JS_EV_SOFTIRQ));
  kinds.Set("TIMER", static_cast<uint32_t>(JS_EV_TIMER));
  kinds.Set("HRTIMER", static_cast<uint32_t>(JS_EV_HRTIMER));
  kinds.Set("PACKET", static_cast<uint32_t>(JS_EV_PACKET));
  kinds.Set("FUNC", static_cast<uint32_t>(JS_EV_FUNC));
  kinds.Set("PAUSE", static_cast<uint32_t>(JS_EV_PAUSE));
  kinds.Set("TASK", static_cast<uint32_t>(JS_EV_TASK));
  kinds.Set("WAKEUP", static_cast<uint32_t>(JS_EV_WAKEUP));
  kinds.Set("WAKE_FLOW", static_cast<uint32_t>(JS_EV_WAKE_FLOW));
  o.Set("kinds", kinds);
  Napi::Object flags = Napi::Object::New(env);
  flags.Set("WAIT_UNKNOWN", static_cast<uint32_t>(JS_F_WAIT_UNKNOWN));
  flags.Set("IPV6", static_cast<uint32_t>(JS_F_IPV6));
  flags.Set("SLOW", static_cast<uint32_t>(JS_F_SLOW));
  flags.Set("NAPI", static_cast<uint32_t>(JS_F_NAPI));
  flags.Set("WAIT_BOUND", static_cast<uint32_t>(JS_F_WAIT_BOUND));
  flags.Set("DEFERRED", static_cast<uint32_t>(JS_F_DEFERRED));
  flags.Set("LATE_RUN", static_cast<uint32_t>(JS_F_LATE_RUN));
  flags.Set("THREADED", static_cast<uint32_t>(JS_F_THREADED));
  flags.Set("STOLEN", static_cast<uint32_t>(JS_F_STOLEN));
  flags.Set("READY", static_cast<uint32_t>(JS_F_READY));
  o.Set("flags", flags);
  o.Set("nrSoftirqs", JS_NR_SOFTIRQS);
  Napi::Object funcs = Napi::Object::New(env);
  funcs.Set("ESTIMATION_TIMER", static_cast<uint32_t>(JS_FN_ESTIMATION_TIMER));
  funcs.Set("NET_RX_ACTION", static_cast<uint32_t>(JS_FN_NET_RX_ACTION));
  o.Set("funcs", funcs);
  Napi::Object hist = Napi::Object::New(env);
  hist.Set("subBits", JS_HIST_SUB_BITS);
  hist.Set("buckets", JS_HIST_BUCKETS);
  hist.Set("valueBytes", static_cast<uint32_t>(sizeof(struct js_hist)));
  hist.Set("bucketsOffset", static_cast<uint32_t>(offsetof(struct js_hist, buckets)));
  o.Set("hist", hist);
  Napi::Object kh = Napi::Object::New(env);
  kh.Set("SOFTIRQ_RUN", static_cast<uint32_t>(JS_KH_SOFTIRQ_RUN));
  kh.Set("SOFTIRQ_WAIT", static_cast<uint32_t>(JS_KH_SOFTIRQ_WAIT));
  kh.Set("NET_RX_ACTION", static_cast<uint32_t>(JS_KH_NET_RX_ACTION));
  kh.Set("WAKEUP_WAIT", static_cast<uint32_t>(JS_KH_WAKEUP_WAIT));
  kh.Set("COUNT", static_cast<uint32_t>(JS_KH_COUNT));
  o.Set("kernelHists", kh);
  return o;
}

Napi::Object InitEmbedded(Napi::Env env, Napi::Object exports) {
  exports.Set("layout", Napi::Function::New(env, Layout, "layout"));
  return exports;
}

}  // namespace js
