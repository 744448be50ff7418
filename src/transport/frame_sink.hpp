// What a link hands its frames and its end to. Implemented by the router's sessions and by nodes.
#pragma once

#include <system_error>

#include "transport/close_reason.hpp"
#include "wire/frame.hpp"

namespace galaxies::transport {

class frame_sink {
 public:
  virtual ~frame_sink() = default;
  // One complete, header-validated frame; the view is valid only during the call. The sink may
  // close the link from here; the link then delivers no further frame.
  virtual void on_frame(const wire::frame_view& frame) = 0;
  // Exactly once, after the last on_frame, never from inside on_frame.
  virtual void on_closed(close_reason reason, std::error_code error) = 0;
  // The outbound queue fell to the mark set with notify_drained_below(); never from inside
  // on_frame.
  virtual void on_drained() {}
};

}  // namespace galaxies::transport
