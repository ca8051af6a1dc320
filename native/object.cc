// BpfObject: libbpf's object lifecycle as generic verbs (open an embedded object,
// configure, load, attach, read maps, run, close). No probe policy here: which
// programs to load and where to attach them is decided in TypeScript. The
// objects themselves and the ABI table are in embedded.cc.
#include "common.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <vector>

namespace js {
namespace {

const napi_type_tag kObjectTag = {0x6a69747465727363ULL, 0x6f70652d6f626a31ULL};

}  // namespace

// Runs a program once with BPF_PROG_TEST_RUN, on `cpu` if >= 0 by pinning this
// thread there for the call (syscall programs take no CPU flag).
static int TestRunFd(int fd, int cpu, int *retval) {
  cpu_set_t old, want;
  bool pinned = false;
  if (cpu >= 0) {
    if (sched_getaffinity(0, sizeof(old), &old)) return -errno;
    CPU_ZERO(&want);
    CPU_SET(cpu, &want);
    if (sched_setaffinity(0, sizeof(want), &want)) return -errno;
    pinned = true;
  }
  LIBBPF_OPTS(bpf_test_run_opts, opts);
  int err = bpf_prog_test_run_opts(fd, &opts);
  if (err) err = -errno;
  if (pinned) sched_setaffinity(0, sizeof(old), &old);
  *retval = opts.retval;
  return err;
}

class BpfObject : public Napi::ObjectWrap<BpfObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "BpfObject", {
        InstanceMethod<&BpfObject::Programs>("programs"),
        InstanceMethod<&BpfObject::SetAutoload>("setAutoload"),
        InstanceMethod<&BpfObject::SetGlobal>("setGlobal"),
        InstanceMethod<&BpfObject::SetMapMaxEntries>("setMapMaxEntries"),
        InstanceMethod<&BpfObject::ReuseMap>("reuseMap"),
        InstanceMethod<&BpfObject::Load>("load"),
        InstanceMethod<&BpfObject::Attach>("attach"),
        InstanceMethod<&BpfObject::ProgramFd>("programFd"),
        InstanceMethod<&BpfObject::MapFd>("mapFd"),
        InstanceMethod<&BpfObject::ProgramInfo>("programInfo"),
        InstanceMethod<&BpfObject::Lookup>("lookup"),
        InstanceMethod<&BpfObject::TestRun>("testRun"),
        InstanceMethod<&BpfObject::Close>("close"),
    });
  }

  explicit BpfObject(const Napi::CallbackInfo &info) : Napi::ObjectWrap<BpfObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsString()) { ThrowType(env, "BpfObject(name): name must be a string"); return; }
    std::string name = info[0].As<Napi::String>();
    const EmbeddedObject *found = FindEmbedded(name);
    if (!found) { ThrowType(env, "BpfObject: no embedded BPF object named '" + name + "'"); return; }
    size_t sz = 0;
    const void *bytes = found->bytes(&sz);
    LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = found->name);
    obj_ = bpf_object__open_mem(bytes, sz, &opts);
    if (!obj_) {
      int err = -errno;
      obj_ = nullptr;
      { ThrowBpf(env, "open " + name, err, LibbpfLogTail(20)); return; }
    }
    name_ = name;
    info.This().As<Napi::Object>().TypeTag(&kObjectTag);
    env_ = env;
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hookInstalled_ = true;
  }

  ~BpfObject() override { Destroy(); }

 private:
  static void CleanupHook(void *arg) { static_cast<BpfObject *>(arg)->Destroy(); }

  void Destroy() {
    if (hookInstalled_) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      hookInstalled_ = false;
    }
    for (auto *&link : links_) {
      if (link) bpf_link__destroy(link);
      link = nullptr;
    }
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
  }

  bool Alive(Napi::Env env) {
    if (obj_) return true;
    ThrowBpf(env, "BpfObject " + name_ + " is closed", EBADF);
    return false;
  }

  bpf_program *Prog(const Napi::CallbackInfo &info, size_t i) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return nullptr;
    if (info.Length() <= i || !info[i].IsString()) {
      ThrowType(env, "program name must be a string");
      return nullptr;
    }
    std::string n = info[i].As<Napi::String>();
    bpf_program *p = bpf_object__find_program_by_name(obj_, n.c_str());
    if (!p) ThrowBpf(env, "find program " + n + " in " + name_, ENOENT);
    return p;
  }

  bpf_map *Map(const Napi::CallbackInfo &info, size_t i) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return nullptr;
    if (info.Length() <= i || !info[i].IsString()) {
      ThrowType(env, "map name must be a string");
      return nullptr;
    }
    std::string n = info[i].As<Napi::String>();
    bpf_map *m = bpf_object__find_map_by_name(obj_, n.c_str());
    if (!m) ThrowBpf(env, "find map " + n + " in " + name_, ENOENT);
    return m;
  }

  Napi::Value Programs(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    Napi::Array out = Napi::Array::New(env);
    bpf_program *p;
    uint32_t i = 0;
    bpf_object__for_each_program(p, obj_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", bpf_program__name(p));
      o.Set("section", bpf_program__section_name(p));
      o.Set("autoload", bpf_program__autoload(p));
      out.Set(i++, o);
    }
    return out;
  }

  Napi::Value SetAutoload(const Napi::CallbackInfo &info) {
    bpf_program *p = Prog(info, 0);
    if (!p) return info.Env().Undefined();
    int err = bpf_program__set_autoload(p, info[1].ToBoolean());
    if (err) ThrowBpf(info.Env(), std::string("set autoload ") + bpf_program__name(p), err);
    return info.Env().Undefined();
  }

  // Writes a global variable (const volatile in .rodata, or .data/.bss) by
  // name, before load. The buffer must match the variable's size exactly.
  Napi::Value SetGlobal(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
      ThrowType(env, "setGlobal(name, buffer): name must be a string and value a Buffer");
      return env.Undefined();
    }
    std::string var = info[0].As<Napi::String>();
    Napi::Buffer<uint8_t> value = info[1].As<Napi::Buffer<uint8_t>>();
    if (loaded_) {
      ThrowBpf(env, "set global " + var + ": object already loaded", EBUSY);
      return env.Undefined();
    }
    const struct btf *btf = bpf_object__btf(obj_);
    bpf_map *m;
    bpf_object__for_each_map(m, obj_) {
      __u32 sec_id = bpf_map__btf_value_type_id(m);
      if (!btf || !sec_id) continue;
      const struct btf_type *sec = btf__type_by_id(btf, sec_id);
      if (!sec || !btf_is_datasec(sec)) continue;
      const struct btf_var_secinfo *vs = btf_var_secinfos(sec);
      for (int i = 0; i < btf_vlen(sec); i++, vs++) {
        const struct btf_type *v = btf__type_by_id(btf, vs->type);
        if (var != btf__name_by_offset(btf, v->name_off)) continue;
        if (vs->size != value.Length()) {
          ThrowBpf(env, "set global " + var + ": size is " + std::to_string(vs->size) + " bytes, got " +
                            std::to_string(value.Length()), EINVAL);
          return env.Undefined();
        }
        size_t sz = 0;
        void *data = const_cast<void *>(bpf_map__initial_value(m, &sz));
        if (!data || vs->offset + vs->size > sz) {
          ThrowBpf(env, "set global " + var, EINVAL);
          return env.Undefined();
        }
        memcpy(static_cast<uint8_t *>(data) + vs->offset, value.Data(), vs->size);
        return env.Undefined();
      }
    }
    ThrowBpf(env, "set global " + var + ": no such variable in " + name_, ENOENT);
    return env.Undefined();
  }

  Napi::Value SetMapMaxEntries(const Napi::CallbackInfo &info) {
    bpf_map *m = Map(info, 0);
    if (!m) return info.Env().Undefined();
    int err = bpf_map__set_max_entries(m, info[1].ToNumber().Uint32Value());
    if (err) ThrowBpf(info.Env(), std::string("set max entries of ") + bpf_map__name(m), err);
    return info.Env().Undefined();
  }

  // Makes this object's map use an existing map fd (e.g. another object's ring
  // buffer), before load.
  Napi::Value ReuseMap(const Napi::CallbackInfo &info) {
    bpf_map *m = Map(info, 0);
    if (!m) return info.Env().Undefined();
    int fd = info[1].ToNumber().Int32Value();
    int err = bpf_map__reuse_fd(m, fd);
    if (err) ThrowBpf(info.Env(), std::string("reuse map fd for ") + bpf_map__name(m), err);
    return info.Env().Undefined();
  }

  Napi::Value Load(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!Alive(env)) return env.Undefined();
    TakeLibbpfLog();
    int err = bpf_object__load(obj_);
    // Loading parses the kernel's BTF (megabytes) and frees it again; hand
    // that memory back now, or every object loaded adds to the peak RSS.
    malloc_trim(0);
    if (err) {
      ThrowBpf(env, "load " + name_, err, LibbpfLogTail(40));
      return env.Undefined();
    }
    loaded_ = true;
    return env.Undefined();
  }

  // Attaches a program where its section says; the link lives until close().
  // Returns the number of links this object holds.
  Napi::Value Attach(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bpf_program *p = Prog(info, 0);
    if (!p) return env.Undefined();
    bpf_link *link = bpf_program__attach(p);
    if (!link) {
      int err = -errno;
      ThrowBpf(env, std::string("attach ") + bpf_program__name(p) + " (" + bpf_program__section_name(p) + ")", err,
               LibbpfLogTail(10));
      return env.Undefined();
    }
    links_.push_back(link);
    return Napi::Number::New(env, static_cast<double>(links_.size()));
  }

  Napi::Value ProgramFd(const Napi::CallbackInfo &info) {
    bpf_program *p = Prog(info, 0);
    if (!p) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), bpf_program__fd(p));
  }

  Napi::Value MapFd(const Napi::CallbackInfo &info) {
    bpf_map *m = Map(info, 0);
    if (!m) return info.Env().Undefined();
    return Napi::Number::New(info.Env(), bpf_map__fd(m));
  }

  // Kernel-side identity and cost of a loaded program (run_time_ns counts only
  // while kernel.bpf_stats_enabled=1).
  Napi::Value ProgramInfo(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bpf_program *p = Prog(info, 0);
    if (!p) return env.Undefined();
    int fd = bpf_program__fd(p);
    if (fd < 0) {
      ThrowBpf(env, std::string("program info of ") + bpf_program__name(p) + ": not loaded", EBADF);
      return env.Undefined();
    }
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    __u32 len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(fd, &pi, &len)) {
      ThrowBpf(env, std::string("program info of ") + bpf_program__name(p), -errno);
      return env.Undefined();
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("id", pi.id);
    o.Set("name", pi.name);
    o.Set("runTimeNs", static_cast<double>(pi.run_time_ns));
    o.Set("runCount", static_cast<double>(pi.run_cnt));
    o.Set("recursionMisses", static_cast<double>(pi.recursion_misses));
    return o;
  }

  size_t ValueBytes(bpf_map *m) {
    size_t v = bpf_map__value_size(m);
    switch (bpf_map__type(m)) {
      case BPF_MAP_TYPE_PERCPU_ARRAY:
      case BPF_MAP_TYPE_PERCPU_HASH:
      case BPF_MAP_TYPE_LRU_PERCPU_HASH:
        return ((v + 7) / 8 * 8) * libbpf_num_possible_cpus();
      default:
        return v;
    }
  }

  // Reads one entry; per-CPU maps return every possible CPU's value, each
  // padded to 8 bytes. Returns null when the key is absent.
  Napi::Value Lookup(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bpf_map *m = Map(info, 0);
    if (!m) return env.Undefined();
    if (info.Length() < 2 || !info[1].IsBuffer()) {
      ThrowType(env, "lookup(map, key): key must be a Buffer");
      return env.Undefined();
    }
    auto key = info[1].As<Napi::Buffer<uint8_t>>();
    if (key.Length() != bpf_map__key_size(m)) {
      ThrowType(env, std::string("lookup ") + bpf_map__name(m) + ": key must be " +
                         std::to_string(bpf_map__key_size(m)) + " bytes");
      return env.Undefined();
    }
    size_t n = ValueBytes(m);
    Napi::Buffer<uint8_t> out = Napi::Buffer<uint8_t>::New(env, n);
    if (bpf_map_lookup_elem(bpf_map__fd(m), key.Data(), out.Data())) {
      int err = errno;
      if (err == ENOENT) return env.Null();
      ThrowBpf(env, std::string("lookup ") + bpf_map__name(m), err);
      return env.Undefined();
    }
    return out;
  }

  Napi::Value TestRun(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    bpf_program *p = Prog(info, 0);
    if (!p) return env.Undefined();
    int cpu = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
    int retval = 0;
    int err = TestRunFd(bpf_program__fd(p), cpu, &retval);
    if (err) {
      ThrowBpf(env, std::string("run ") + bpf_program__name(p) + (cpu >= 0 ? " on CPU " + std::to_string(cpu) : ""),
               err);
      return env.Undefined();
    }
    return Napi::Number::New(env, retval);
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Destroy();
    return info.Env().Undefined();
  }

  std::string name_;
  bpf_object *obj_ = nullptr;
  bool loaded_ = false;
  bool hookInstalled_ = false;
  napi_env env_ = nullptr;
  std::vector<bpf_link *> links_;

 public:
  static BpfObject *FromValue(Napi::Env env, Napi::Value v) {
    if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kObjectTag)) {
      ThrowType(env, "expected a BpfObject");
      return nullptr;
    }
    return Napi::ObjectWrap<BpfObject>::Unwrap(v.As<Napi::Object>());
  }
  bpf_map *FindMap(Napi::Env env, const std::string &n) {
    if (!Alive(env)) return nullptr;
    bpf_map *m = bpf_object__find_map_by_name(obj_, n.c_str());
    if (!m) ThrowBpf(env, "find map " + n + " in " + name_, ENOENT);
    return m;
  }
};

bpf_map *FindObjectMap(Napi::Env env, Napi::Value object, const std::string &map) {
  BpfObject *o = BpfObject::FromValue(env, object);
  return o ? o->FindMap(env, map) : nullptr;
}

// testRunFd(fd, cpu): for worker threads that hold only a program fd.
static Napi::Value TestRunFdJs(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = info[0].ToNumber().Int32Value();
  int cpu = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : -1;
  int retval = 0;
  int err = TestRunFd(fd, cpu, &retval);
  if (err) {
    ThrowBpf(env, "run program fd " + std::to_string(fd), err);
    return env.Undefined();
  }
  return Napi::Number::New(env, retval);
}

Napi::Object InitObject(Napi::Env env, Napi::Object exports, AddonData *data) {
  Napi::Function ctor = BpfObject::Define(env);
  data->objectCtor = Napi::Persistent(ctor);
  exports.Set("BpfObject", ctor);
  exports.Set("testRunFd", Napi::Function::New(env, TestRunFdJs, "testRunFd"));
  exports.Set("numPossibleCpus", Napi::Number::New(env, libbpf_num_possible_cpus()));
  return exports;
}

}  // namespace js
