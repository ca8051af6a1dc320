// RingReader: a BPF ring buffer consumed on the libuv loop. The ring's epoll fd
// is watched with uv_poll; when readable, records are copied into one reusable
// ArrayBuffer and JavaScript is called once per full batch (and once for the
// remainder), never once per event. Records must all be `recordSize` bytes.
#include "common.h"

#include <bpf/libbpf.h>
#include <uv.h>

#include <cerrno>
#include <cstring>

namespace js {

bpf_map *FindObjectMap(Napi::Env env, Napi::Value object, const std::string &map);

namespace {
const napi_type_tag kRingTag = {0x6a69747465727363ULL, 0x6f70652d72696e67ULL};
// Returned from the sample callback to end one consume() early; libbpf passes it
// through unchanged and has already advanced past the record.
const int kStopConsume = -100000;
}  // namespace

class RingReader : public Napi::ObjectWrap<RingReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingReader", {
        InstanceMethod<&RingReader::Drain>("drain"),
        InstanceMethod<&RingReader::Close>("close"),
        InstanceMethod<&RingReader::Stats>("stats"),
    });
  }

  // new RingReader(object, mapName, onBatch, batchBytes, recordSize, eventsPerWakeup)
  explicit RingReader(const Napi::CallbackInfo &info) : Napi::ObjectWrap<RingReader>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 6 || !info[1].IsString() || !info[2].IsFunction() || !info[3].IsNumber() ||
        !info[4].IsNumber() || !info[5].IsNumber())
      { ThrowType(env, "RingReader(object, map, onBatch, batchBytes, recordSize, eventsPerWakeup)"); return; }
    std::string mapName = info[1].As<Napi::String>();
    bpf_map *map = FindObjectMap(env, info[0], mapName);
    if (!map) return;
    if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF) { ThrowType(env, "map " + mapName + " is not a ring buffer"); return; }
    if (bpf_map__fd(map) < 0) { ThrowBpf(env, "open ring " + mapName + ": object not loaded", EBADF); return; }
    recordSize_ = info[4].As<Napi::Number>().Uint32Value();
    size_t batchBytes = info[3].As<Napi::Number>().Uint32Value();
    budget_ = info[5].As<Napi::Number>().Uint32Value();
    if (recordSize_ == 0 || batchBytes < recordSize_ || budget_ == 0)
      { ThrowType(env, "RingReader: recordSize, batchBytes >= recordSize and eventsPerWakeup must be positive"); return; }
    capacity_ = batchBytes / recordSize_ * recordSize_;

    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, capacity_);
    batch_ = static_cast<uint8_t *>(ab.Data());
    buffer_ = Napi::Persistent(ab);
    onBatch_ = Napi::Persistent(info[2].As<Napi::Function>());
    asyncContext_ = new Napi::AsyncContext(env, "jitterscope:ring");

    rb_ = ring_buffer__new(bpf_map__fd(map), Sample, this, nullptr);
    if (!rb_) { ThrowBpf(env, "open ring " + mapName, -errno); return; }

    uv_loop_t *loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) { ThrowBpf(env, "get event loop", EINVAL); return; }
    poll_ = new uv_poll_t;
    poll_->data = this;
    int err = uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_));
    if (err) {
      delete poll_;
      poll_ = nullptr;
      { ThrowBpf(env, "watch ring " + mapName, err); return; }
    }
    uv_poll_start(poll_, UV_READABLE, OnReadable);
    env_ = env;
    info.This().As<Napi::Object>().TypeTag(&kRingTag);
    napi_add_env_cleanup_hook(env, CleanupHook, this);
    hookInstalled_ = true;
  }

  ~RingReader() override { Destroy(); }

 private:
  static void CleanupHook(void *arg) { static_cast<RingReader *>(arg)->Destroy(); }

  void Destroy() {
    if (hookInstalled_) {
      napi_remove_env_cleanup_hook(env_, CleanupHook, this);
      hookInstalled_ = false;
    }
    if (poll_) {
      uv_poll_stop(poll_);
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t *>(poll_), [](uv_handle_t *h) { delete reinterpret_cast<uv_poll_t *>(h); });
      poll_ = nullptr;
    }
    if (rb_) ring_buffer__free(rb_);
    rb_ = nullptr;
    delete asyncContext_;
    asyncContext_ = nullptr;
  }

  static int Sample(void *ctx, void *data, size_t size) {
    RingReader *self = static_cast<RingReader *>(ctx);
    if (size != self->recordSize_) {
      self->badRecords_++;
      return 0;
    }
    if (self->used_ + size > self->capacity_) {
      if (!self->Flush()) return kStopConsume;
    }
    memcpy(self->batch_ + self->used_, data, size);
    self->used_ += size;
    self->count_++;
    if (++self->roundEvents_ >= self->budget_) return kStopConsume;
    return 0;
  }

  // Hands the batch to JavaScript. Returns false when the callback threw.
  bool Flush() {
    if (!count_) return true;
    Napi::Env env(env_);
    uint32_t count = count_;
    uint32_t bytes = used_;
    count_ = 0;
    used_ = 0;
    batches_++;
    events_ += count;
    std::initializer_list<napi_value> args = {buffer_.Value(), Napi::Number::New(env, count),
                                              Napi::Number::New(env, bytes)};
    if (inDrain_)
      onBatch_.Call(args);
    else
      onBatch_.MakeCallback(env.Global(), args, *asyncContext_);
    if (env.IsExceptionPending()) {
      failed_ = true;
      return false;
    }
    return true;
  }

  // One consume round, bounded by eventsPerWakeup so a flood cannot starve the
  // loop; the ring stays readable and uv_poll calls again on the next turn.
  int ConsumeRound() {
    roundEvents_ = 0;
    int n = ring_buffer__consume(rb_);
    if (failed_) return -1;
    if (!Flush()) return -1;
    if (n < 0 && n != kStopConsume) return n;
    return 0;
  }

  static void OnReadable(uv_poll_t *handle, int status, int events) {
    RingReader *self = static_cast<RingReader *>(handle->data);
    if (!self || !self->rb_) return;
    Napi::Env env(self->env_);
    Napi::HandleScope scope(env);
    int err = self->ConsumeRound();
    if (self->failed_) {
      // The batch callback threw: stop reading and surface it as an uncaught
      // exception, as any other callback from the loop would.
      self->Stop();
      Napi::Error e = env.GetAndClearPendingException();
      napi_fatal_exception(env, e.Value());
    } else if (err < 0) {
      self->consumeErrors_++;
    }
  }

  void Stop() {
    if (poll_) uv_poll_stop(poll_);
  }

  // drain(): consume everything available now, synchronously. Exceptions from
  // the batch callback propagate to the caller.
  Napi::Value Drain(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    if (!rb_) return Napi::Number::New(env, 0);
    uint64_t before = events_;
    inDrain_ = true;
    uint32_t saved = budget_;
    budget_ = UINT32_MAX;
    int err = ConsumeRound();
    budget_ = saved;
    inDrain_ = false;
    if (env.IsExceptionPending()) return env.Undefined();
    if (err < 0) ThrowBpf(env, "consume ring", err);
    return Napi::Number::New(env, static_cast<double>(events_ - before));
  }

  Napi::Value Close(const Napi::CallbackInfo &info) {
    Destroy();
    return info.Env().Undefined();
  }

  Napi::Value Stats(const Napi::CallbackInfo &info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    o.Set("events", static_cast<double>(events_));
    o.Set("batches", static_cast<double>(batches_));
    o.Set("badRecords", static_cast<double>(badRecords_));
    o.Set("consumeErrors", static_cast<double>(consumeErrors_));
    o.Set("open", rb_ != nullptr);
    return o;
  }

  napi_env env_ = nullptr;
  bool hookInstalled_ = false;
  ring_buffer *rb_ = nullptr;
  uv_poll_t *poll_ = nullptr;
  Napi::AsyncContext *asyncContext_ = nullptr;
  Napi::FunctionReference onBatch_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  uint8_t *batch_ = nullptr;
  size_t capacity_ = 0;
  size_t used_ = 0;
  uint32_t count_ = 0;
  uint32_t recordSize_ = 0;
  uint32_t budget_ = 0;
  uint32_t roundEvents_ = 0;
  bool inDrain_ = false;
  bool failed_ = false;
  uint64_t events_ = 0, batches_ = 0, badRecords_ = 0, consumeErrors_ = 0;
};

Napi::Object InitRing(Napi::Env env, Napi::Object exports, AddonData *data) {
  Napi::Function ctor = RingReader::Define(env);
  data->ringCtor = Napi::Persistent(ctor);
  exports.Set("RingReader", ctor);
  return exports;
}

}  // namespace js
