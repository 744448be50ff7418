// A move-only, type-erased callable: what std::move_only_function (C++23) gives, for C++20.
// Needed because Asio completion handlers (use_awaitable, use_future) are move-only.
// Callables of up to inline_size bytes that move without throwing live inside the object, so that
// a request's completion costs no allocation (a lambda capturing a few pointers or a shared_ptr,
// Asio's coroutine handlers); larger ones go to the heap.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace galaxies::detail {

// The default room: a lambda capturing a dozen pointers, or an Asio handler beside an
// any_io_executor (56 bytes): 112 bytes in all with the pointer to the call table.
template <class Signature, std::size_t InlineSize = 96>
class unique_function;

template <class R, class... Args, std::size_t InlineSize>
class unique_function<R(Args...), InlineSize> {
 public:
  static constexpr std::size_t inline_size = InlineSize;

  unique_function() = default;

  template <class F>
  requires(!std::is_same_v<std::decay_t<F>, unique_function> &&
           std::is_invocable_r_v<R, std::decay_t<F>&, Args...>) unique_function(F&& f) {
    using fn = std::decay_t<F>;
    if constexpr (fits_inline<fn>) {
      ::new (static_cast<void*>(storage_)) fn(std::forward<F>(f));
      ops_ = &inline_ops<fn>;
    } else {
      ::new (static_cast<void*>(storage_)) fn*(new fn(std::forward<F>(f)));
      ops_ = &heap_ops<fn>;
    }
  }

  unique_function(unique_function&& other) noexcept { take(other); }
  unique_function& operator=(unique_function&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  ~unique_function() { reset(); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }
  R operator()(Args... args) { return ops_->call(storage_, std::forward<Args>(args)...); }

  // Whether a callable of type F is kept without an allocation (for tests).
  template <class F>
  static constexpr bool fits_inline =
      sizeof(F) <= inline_size &&
      alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

 private:
  struct ops_t {
    R (*call)(void* self, Args&&... args);
    // Move-constructs the callable at `to` from the one at `from`, and destroys the one at `from`.
    void (*relocate)(void* from, void* to) noexcept;
    void (*destroy)(void* self) noexcept;
  };

  template <class F>
  static constexpr ops_t inline_ops{
      [](void* self, Args&&... args) -> R {
        return (*static_cast<F*>(self))(std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept {
        ::new (to) F(std::move(*static_cast<F*>(from)));
        static_cast<F*>(from)->~F();
      },
      [](void* self) noexcept { static_cast<F*>(self)->~F(); },
  };
  template <class F>
  static constexpr ops_t heap_ops{
      [](void* self, Args&&... args) -> R {
        return (**static_cast<F**>(self))(std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept { ::new (to) F*(*static_cast<F**>(from)); },
      [](void* self) noexcept { delete *static_cast<F**>(self); },
  };

  void take(unique_function& other) noexcept {
    if (!other.ops_) return;
    other.ops_->relocate(other.storage_, storage_);
    ops_ = std::exchange(other.ops_, nullptr);
  }
  void reset() noexcept {
    if (ops_) std::exchange(ops_, nullptr)->destroy(storage_);
  }

  const ops_t* ops_ = nullptr;
  alignas(std::max_align_t) unsigned char storage_[inline_size];
};

}  // namespace galaxies::detail
